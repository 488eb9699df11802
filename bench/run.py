"""Entry point of `make bench`: corpus, servers, every part chosen, RESULTS.md."""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import (
    cluster_part,
    cluster_report,
    compress_bench,
    disk_part,
    disk_report,
    forward_part,
    forward_report,
    local_report,
    queue_bench,
    reconcile_part,
    reconcile_report,
    report,
    scale_part,
    scale_report,
    sessions_part,
    sessions_report,
    viewer_part,
    viewer_report,
)
from bench import corpus as corpus_mod
from bench.environment import describe
from bench.local_report import LocalResults
from bench.procs import free_port, terminate
from bench.scenario import Context, Measurements, measure
from bench.servers import Server, start_hounsfield, start_orthanc, start_storescp, wait_ready
from bench.settings import PARTS, SPLICED, BenchSettings, load
from bench.steps import merge

DEFAULT_NOTES = """## Notes

(Profiling remarks go here; this section is kept as it is when the benchmark rewrites the file.)
"""


def _exit_status(code: int | None) -> str:
    if code is None:
        return "none: still running after the grace period, killed"
    if code < 0:
        return f"{code} (ended by {signal.Signals(-code).name} itself, not by a clean exit)"
    return str(code)


def _bench_one(
    name: str,
    start: Callable[[], Server],
    corpus: corpus_mod.Corpus,
    settings: BenchSettings,
    storescp_dir: Path,
    stow: corpus_mod.Corpus | None,
    storescp_port: int = 0,
) -> Measurements:
    m = Measurements(name)
    print(f"\n== {name}", flush=True)
    server: Server | None = None
    try:
        server = start()
        ready = wait_ready(server)
        print(f"    ready after {ready:.1f}s (pid {server.pid}, DICOM port {server.port})")
        measure(Context(server, corpus, settings, storescp_dir, m, stow, storescp_port))
    except Exception as exc:
        print(f"\n    FAILED: {exc}", flush=True)
        m.errors.append(f"start-up: {exc}\n{traceback.format_exc(limit=4)}")
    finally:
        if server is not None:
            server.stop()
            status = _exit_status(server.exit_code)
            print(f"    stopped, exit status {status}", flush=True)
            os.sync()  # the next server must not pay for this one's dirty pages
            m.notes.append(f"exit status after SIGTERM: {status}")
            if m.errors:
                m.errors[-1] += f"\nserver log (end):\n{server.log_tail()}"
    return m


def _corpora(settings: BenchSettings) -> tuple[corpus_mod.Corpus, corpus_mod.Corpus | None]:
    """The CT corpus (and the STOW corpus for the web part), generated or cached."""
    print(
        f"corpus: {settings.studies} studies x {settings.instances} instances (series of "
        f"{settings.series_size}) in {settings.corpus_dir}",
        flush=True,
    )
    t0 = time.perf_counter()
    corpus, generated = corpus_mod.ensure(
        settings.corpus_dir, settings.studies, settings.instances, settings.series_size
    )
    stow = None
    if settings.web:
        stow, _ = corpus_mod.ensure(
            settings.stow_corpus_dir, 1, settings.stow_instances, settings.series_size, "STOW"
        )
    if settings.servers:
        corpus_mod.warm(corpus)
        if stow is not None:
            corpus_mod.warm(stow)
        os.sync()  # a freshly written corpus must not be flushed while the first server runs
    what = "generated" if generated else "cached"
    print(f"corpus {what}: {corpus.total_bytes / 1e6:,.0f} MB ({time.perf_counter() - t0:.1f}s)")
    return corpus, stow


def _servers(
    settings: BenchSettings, corpus: corpus_mod.Corpus, stow: corpus_mod.Corpus | None
) -> list[Measurements]:
    """Hounsfield and Orthanc in turn through the DIMSE and/or DICOMweb parts,
    `settings.rounds` times (Hounsfield first in odd rounds, Orthanc first in even ones);
    each server's figures are the medians of its rounds."""
    storescp_port = free_port()
    storescp, storescp_dir = start_storescp(settings.work_dir, storescp_port)
    starts: tuple[tuple[str, Callable[[], Server]], ...] = (
        (
            "Hounsfield",
            lambda: start_hounsfield(
                settings.work_dir, storescp_port, settings.timeout, settings.postgres
            ),
        ),
        ("Orthanc", lambda: start_orthanc(settings.work_dir, storescp_port, settings.web)),
    )
    rounds: dict[str, list[Measurements]] = {name: [] for name, _ in starts}
    try:
        for i in range(settings.rounds):
            print(f"\n== round {i + 1} of {settings.rounds}", flush=True)
            for name, start in starts if i % 2 == 0 else starts[::-1]:
                rounds[name].append(
                    _bench_one(name, start, corpus, settings, storescp_dir, stow, storescp_port)
                )
    finally:
        terminate(storescp)
    return [merge(rounds[name]) for name, _ in starts]


def _local(settings: BenchSettings, corpus: corpus_mod.Corpus | None) -> LocalResults:
    """The parts measured on Hounsfield alone, after the servers are gone."""
    local = LocalResults()
    if settings.queue:
        local.queue = queue_bench.measure(settings)
    if settings.compress and corpus is not None:
        local.compress = compress_bench.measure(settings, corpus)
    return local


def _earlier_report(settings: BenchSettings) -> str | None:
    """RESULTS.md as it stands when only parts that splice their own section ran (disk,
    scale, sessions): its other sections are kept."""
    if not settings.parts <= SPLICED:
        return None
    try:
        return settings.results_file.read_text()
    except OSError:
        return None


def main() -> int:
    """Run the chosen parts; exit code 1 if anything failed."""
    settings = load()
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    started_at, started = report.timestamp(), time.perf_counter()
    print(f"parts: {', '.join(p for p in PARTS if p in settings.parts)}", flush=True)
    corpus, stow = _corpora(settings) if settings.servers or settings.compress else (None, None)
    env = describe()
    results = _servers(settings, corpus, stow) if settings.servers and corpus else []
    local = _local(settings, corpus)
    forward = forward_part.measure(settings) if settings.forward else None
    reconcile = reconcile_part.measure(settings) if settings.reconcile else None
    cluster = cluster_part.measure(settings) if "cluster" in settings.parts else None
    viewer = viewer_part.measure(settings) if "viewer" in settings.parts else None
    disk = disk_part.measure(settings) if settings.disk else None
    scale = scale_part.measure(settings) if "scale" in settings.parts else None
    sessions = sessions_part.measure(settings) if "sessions" in settings.parts else None

    lines = report.lines(results[0], results[1], settings, corpus) if results and corpus else []
    if lines:
        print("\n" + report.text_table(lines))
    print("\n" + local_report.text(local))
    if forward is not None:
        print(forward_report.text(forward))
    if reconcile is not None:
        print(reconcile_report.text(reconcile))
    if cluster is not None:
        print(cluster_report.text(cluster))
    if viewer is not None:
        print(viewer_report.text(viewer))
    if disk is not None:
        print(disk_report.text(disk))
    if scale is not None:
        print(scale_report.text(scale))
    if sessions is not None:
        print(sessions_report.text(sessions))
    text = _earlier_report(settings)
    if text is None:
        text = report.markdown(
            lines,
            results,
            env,
            settings,
            corpus,
            started_at,
            time.perf_counter() - started,
            DEFAULT_NOTES,
            local,
            forward,
            reconcile,
        )
        text = cluster_report.insert(text, cluster)
        text = viewer_report.insert(text, viewer)
    text = disk_report.insert(text, disk, started_at)
    text = scale_report.insert(text, scale, started_at)
    text = sessions_report.insert(text, sessions, started_at)
    report.write(settings.results_file, text)
    print(f"\nwritten {settings.results_file}")
    for m in results:
        for error in m.errors:
            print(f"{m.server} FAILED: {error.splitlines()[0]}", file=sys.stderr)
    part_errors = (forward.errors if forward else []) + (reconcile.errors if reconcile else [])
    part_errors += cluster.errors if cluster else []
    part_errors += viewer.errors if viewer else []
    part_errors += disk.errors if disk else []
    part_errors += scale.errors if scale else []
    part_errors += sessions.errors if sessions else []
    for error in local.errors + part_errors:
        print(f"FAILED: {error.splitlines()[0]}", file=sys.stderr)
    return 1 if any(m.errors for m in results) or local.errors or part_errors else 0


if __name__ == "__main__":
    sys.exit(main())
