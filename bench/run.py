"""Entry point of `make bench`: corpus, Hounsfield then Orthanc, table and RESULTS.md."""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import corpus as corpus_mod
from bench import report
from bench.environment import describe
from bench.procs import free_port, terminate
from bench.scenario import Context, Measurements, measure
from bench.servers import Server, start_hounsfield, start_orthanc, start_storescp, wait_ready
from bench.settings import BenchSettings, load

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
) -> Measurements:
    m = Measurements(name)
    print(f"\n== {name}", flush=True)
    server: Server | None = None
    try:
        server = start()
        ready = wait_ready(server)
        print(f"    ready after {ready:.1f}s (pid {server.pid}, DICOM port {server.port})")
        measure(Context(server, corpus, settings, storescp_dir, m, stow))
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


def main() -> int:
    """Run the whole benchmark; exit code 1 if a server failed."""
    settings = load()
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    started_at, started = report.timestamp(), time.perf_counter()
    print(
        f"parts: {', '.join(sorted(settings.parts))}; corpus: {settings.studies} studies x "
        f"{settings.instances} instances (series of {settings.series_size}) in "
        f"{settings.corpus_dir}",
        flush=True,
    )
    t0 = time.perf_counter()
    corpus, generated = corpus_mod.ensure(
        settings.corpus_dir, settings.studies, settings.instances, settings.series_size
    )
    what = "generated" if generated else "cached"
    corpus_mod.warm(corpus)
    stow = None
    if settings.web:
        stow, _ = corpus_mod.ensure(
            settings.stow_corpus_dir, 1, settings.stow_instances, settings.series_size, "STOW"
        )
        corpus_mod.warm(stow)
    os.sync()  # a freshly written corpus must not be flushed while the first server runs
    print(f"corpus {what}: {corpus.total_bytes / 1e6:,.0f} MB ({time.perf_counter() - t0:.1f}s)")
    env = describe()

    storescp_port = free_port()
    storescp, storescp_dir = start_storescp(settings.work_dir, storescp_port)
    try:
        results = [
            _bench_one(
                "Hounsfield",
                lambda: start_hounsfield(
                    settings.work_dir, storescp_port, settings.timeout, settings.postgres
                ),
                corpus,
                settings,
                storescp_dir,
                stow,
            ),
            _bench_one(
                "Orthanc",
                lambda: start_orthanc(settings.work_dir, storescp_port, settings.web),
                corpus,
                settings,
                storescp_dir,
                stow,
            ),
        ]
    finally:
        terminate(storescp)

    lines = report.lines(results[0], results[1], settings, corpus)
    print("\n" + report.text_table(lines))
    text = report.markdown(
        lines,
        results,
        env,
        settings,
        corpus,
        started_at,
        time.perf_counter() - started,
        DEFAULT_NOTES,
    )
    report.write(settings.results_file, text)
    print(f"\nwritten {settings.results_file}")
    for m in results:
        for error in m.errors:
            print(f"{m.server} FAILED: {error.splitlines()[0]}", file=sys.stderr)
    return 1 if any(m.errors for m in results) else 0


if __name__ == "__main__":
    sys.exit(main())
