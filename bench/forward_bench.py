"""The forward part over loopback: a Hounsfield node forwarding to Orthanc against storescu."""

from __future__ import annotations

import json
import statistics
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import corpus as corpus_mod
from bench import dicom_ops
from bench.memory import cpu_seconds
from bench.procs import LOCALHOST, free_port, run
from bench.servers import Server, hounsfield_command, start_hounsfield, start_orthanc, wait_ready
from bench.settings import REPO_DIR, BenchSettings

# The node processes (indexes metadata of) a study 1 s after its last instance instead of
# 60 s, so that this background work is over before the clock starts.
QUIET_NODE = {"HOUNSFIELD_STUDY_SETTLE_SECONDS": "1"}
SETTLE_TIMEOUT = 180.0
BUSY = ("idle", "pending", "in_progress")
ORTHANC_GRACE = 3.0  # seconds; its data is thrown away


@dataclass
class Runs:
    """Repeated transfers of the same files one way: wall seconds of each run."""

    label: str
    instances: int
    nbytes: int
    seconds: list[float] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)  # forwards: until the first left pending
    cpu: list[float] = field(default_factory=list)  # forwards: the node's CPU seconds

    @property
    def median(self) -> float | None:
        """The median wall time, or None when no run finished."""
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def per_second(self) -> float | None:
        """Instances per second of the median run."""
        return self.instances / self.median if self.median else None

    @property
    def mb_per_second(self) -> float | None:
        """MB (10^6 bytes) of DICOM files per second of the median run."""
        return self.nbytes / 1e6 / self.median if self.median else None

    @property
    def mbit(self) -> float | None:
        """Goodput of the median run in Mbit/s."""
        return self.nbytes * 8 / 1e6 / self.median if self.median else None


@dataclass
class LoopbackResults:
    """storescu and the node's forward of the same studies, to a fresh Orthanc each run."""

    storescu: Runs
    forward: Runs
    studies: int
    errors: list[str] = field(default_factory=list)


def files_of(corpus: corpus_mod.Corpus) -> list[Path]:
    """Every file of the corpus, study by study."""
    return [f for study in corpus.studies for f in study.files]


def start_node(
    settings: BenchSettings,
    work: Path,
    folders: Sequence[Path],
    wrap: Sequence[str] = (),
    postgres: str | None = None,
) -> Server:
    """A fresh Hounsfield node (under `wrap`) holding the files of `folders`, imported with
    `hounsfield import`, answering C-ECHO and done with processing them."""
    node = start_hounsfield(work, free_port(), settings.timeout, postgres, wrap, QUIET_NODE)
    try:
        cli = hounsfield_command()
        imported = run([cli, "import", *map(str, folders)], settings.timeout, node.env, work)
        imported.check()
        wait_ready(node)
        deadline = time.perf_counter() + SETTLE_TIMEOUT
        while time.perf_counter() < deadline:
            listed = run([cli, "queue", "list", "--kind", "process-study", "--json"], 60, node.env)
            if not any(item["status"] in BUSY for item in json.loads(listed.check().stdout)):
                return node
            time.sleep(1)
        raise RuntimeError(f"studies still being processed after {SETTLE_TIMEOUT:.0f}s")
    except BaseException:
        node.stop()
        raise


@contextmanager
def orthanc(work: Path, web: bool = False, wrap: Sequence[str] = ()) -> Iterator[Server]:
    """A fresh Orthanc (its own folder under `work`), ready; stopped afterwards, killed after
    ORTHANC_GRACE seconds (it waits for the node's idle pooled association, which the node
    releases up to linger + 20 s after its last use)."""
    server = start_orthanc(work, free_port(), web, wrap)
    try:
        wait_ready(server)
        yield server
    finally:
        server.stop(ORTHANC_GRACE)


def time_forward(
    node: Server, device: dict[str, Any], request: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Run bench.forward_timer beside the node (in its namespace); its JSON answer."""
    args = [sys.executable, "-m", "bench.forward_timer", node.http_base]
    args += [json.dumps(device), json.dumps(request), str(timeout)]
    cpu = cpu_seconds(node.pid)
    done = run([*node.wrap, *args], timeout + 60, cwd=REPO_DIR)
    cpu = cpu_seconds(node.pid) - cpu
    try:
        answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        raise RuntimeError(f"forward_timer: {done.stderr.strip()[-1500:]}") from exc
    if "error" in answer:
        raise RuntimeError(f"forward to {request['destination']} failed: {answer['error']}")
    return answer | {"cpu": cpu}


def record(runs: Runs, answer: dict[str, Any]) -> None:
    """Add one forward_timer answer to `runs`, printing it."""
    runs.seconds.append(float(answer["seconds"]))
    if answer.get("first_sending") is not None:
        runs.starts.append(float(answer["first_sending"]))
    if answer.get("cpu") is not None:
        runs.cpu.append(float(answer["cpu"]))
    print(f"      {runs.label}: {answer['seconds']:.2f}s", flush=True)


def _storescu(runs: Runs, oc: Server, files: list[Path], timeout: float) -> None:
    record(runs, {"seconds": dicom_ops.store(oc.ae_title, oc.port, files, 1, timeout).seconds})


def measure_loopback(settings: BenchSettings) -> LoopbackResults:
    """Forward the corpus from a node to a fresh Orthanc `forward_repeats` times, alternating
    with storescu sending the same files to a fresh Orthanc."""
    corpus, _ = corpus_mod.ensure(
        settings.forward_corpus_dir,
        settings.forward_studies,
        settings.forward_instances,
        settings.forward_series_size,
        "FWD",
    )
    corpus_mod.warm(corpus)
    files, work = files_of(corpus), settings.work_dir / "forward"
    size = sum(f.stat().st_size for f in files)
    out = LoopbackResults(
        Runs("DCMTK storescu, 1 association", len(files), size),
        Runs("Hounsfield forward, 1 association", len(files), size),
        len(corpus.studies),
    )
    dates = sorted(s.date for s in corpus.studies)
    request = {"date_from": dates[0], "date_to": dates[-1]}
    first = corpus.studies[0]
    warm_up = {"study": first.uid, "series": first.series[0].uid}
    print(f"\n== forward, loopback: {len(files)} instances, {size / 1e6:,.0f} MB", flush=True)
    node = start_node(settings, work, study_folders(corpus), postgres=settings.postgres)
    try:
        with orthanc(work) as oc:  # untimed: the node's first forward loads its SCU code
            device = {"host": LOCALHOST, "port": oc.port}
            time_forward(node, device, {"destination": "WARMUP", **warm_up}, settings.timeout)
        for n in range(settings.forward_repeats):
            for runs in (out.storescu, out.forward):
                try:
                    with orthanc(work) as oc:
                        if runs is out.storescu:
                            _storescu(runs, oc, files, settings.timeout)
                            continue
                        device = {"host": LOCALHOST, "port": oc.port}
                        ask = {"destination": f"LOOP{n + 1}", **request}
                        record(runs, time_forward(node, device, ask, settings.timeout))
                except Exception as exc:
                    print(f"      {runs.label}: FAILED {str(exc).splitlines()[0]}", flush=True)
                    out.errors.append(f"{runs.label}: {exc}\n{traceback.format_exc(limit=3)}")
    finally:
        node.stop()
    return out


def study_folders(corpus: corpus_mod.Corpus) -> list[Path]:
    """The corpus's study folders (not its manifest), for `hounsfield import`."""
    return [Path(corpus.root) / f"study{n:03d}" for n in range(1, len(corpus.studies) + 1)]
