"""The disk part: this disk's limit for fsynced 0.5 MB files, and Hounsfield's ingest against it."""

from __future__ import annotations

import os
import shutil
import statistics
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from multiprocessing.queues import Queue
from pathlib import Path

from bench import corpus as corpus_mod
from bench import dicom_ops as ops
from bench.memory import cpu_split
from bench.procs import free_port, reap
from bench.servers import Server, start_hounsfield, start_sink, wait_ready
from bench.settings import BenchSettings
from hounsfield.storage.atomic import write_atomic

FILE_BYTES = 512 * 1024  # 0.52 MB, about one 512x512 16-bit CT instance
POOL_BYTES = 8 * 1024 * 1024  # random bytes each writer cuts its files from
WRITERS = 4  # four writers, four associations
TARGET = 0.70  # ingest MB/s at least 70% of the four-writer limit
BARRIER_SECONDS = 120.0  # longest wait for every writer to be ready
MODES = (("1 writer", 1, "threads"), ("4 threads", 4, "threads"), ("4 processes", 4, "processes"))


@dataclass(frozen=True, kw_only=True)
class Run(ops.Timed):
    """One timed run (files written or instances stored, their bytes) and its CPU use."""

    busy: float  # share of all the machine's CPU time spent busy during the run
    late: float = 0.0  # seconds the last writer started after the first
    server_cpu: float = 0.0  # the receiver's CPU seconds (ingest, receiving alone)
    server_system: float = 0.0  # the part of them spent in the kernel

    @property
    def machine_ms(self) -> float:
        """Milliseconds of the whole machine's CPU (every core, every process) per item."""
        cores = os.cpu_count() or 1
        return 1000 * self.busy * cores * self.seconds / self.count if self.count else 0.0


@dataclass
class DiskResults:
    """The disk-limit runs per writer mode, the ingest runs, and what failed."""

    seconds: float
    repeats: int
    folder: str
    filesystem: str
    index: str
    writers: dict[str, list[Run]] = field(default_factory=dict)
    ingest: list[Run] = field(default_factory=list)
    receive: list[Run] = field(default_factory=list)  # the same clients to a receiver alone
    rounds: list[float] = field(default_factory=list)  # each round's ingest over its limit
    instances: int = 0
    instance_bytes: int = 0
    corpus: str = ""
    errors: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # 1-minute load average before, after

    def median(self, runs: Sequence[Run], attr: str) -> float | None:
        """The median of one property over `runs`."""
        values = [float(getattr(r, attr)) for r in runs]
        return statistics.median(values) if values else None

    @property
    def limit_mode(self) -> str | None:
        """The four-writer mode with the higher median MB/s: the disk's limit."""
        modes = [m for m in ("4 threads", "4 processes") if self.writers.get(m)]
        if not modes:
            return None
        return max(modes, key=lambda m: self.median(self.writers[m], "mb_per_second") or 0.0)

    @property
    def limit_mbps(self) -> float | None:
        """The disk's four-writer limit in MB/s."""
        mode = self.limit_mode
        return self.median(self.writers[mode], "mb_per_second") if mode else None

    @property
    def limit_files(self) -> float | None:
        """The disk's four-writer limit in files per second."""
        mode = self.limit_mode
        return self.median(self.writers[mode], "per_second") if mode else None

    @property
    def ceiling(self) -> float | None:
        """Files per second of a receiver that only received and durably wrote each object:
        the machine's cores over the CPU of receiving alone plus a durable write."""
        mode = self.limit_mode
        receive = self.median(self.receive, "machine_ms")
        write = self.median(self.writers[mode], "machine_ms") if mode else None
        if not receive or not write:
            return None
        return 1000 * (os.cpu_count() or 1) / (receive + write)

    @property
    def ratio(self) -> float | None:
        """The median over the rounds of ingest MB/s over that round's four-writer limit
        (the higher of its two four-writer runs)."""
        return statistics.median(self.rounds) if self.rounds else None


def _cpu_jiffies() -> tuple[int, int]:
    """Busy and total CPU time of the whole machine so far (/proc/stat). Time the host gave
    to other guests (steal) counts in the total, not as busy: this machine did not use it."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4] + fields[7]  # idle, iowait, steal (guest time is in user)
    return sum(fields) - idle, sum(fields)


def _busy_since(before: tuple[int, int]) -> float:
    busy, total = _cpu_jiffies()
    return (busy - before[0]) / (total - before[1]) if total > before[1] else 0.0


def filesystem_of(folder: Path) -> str:
    """`device (type, mounted on ...)` of the mount holding `folder`."""
    best = ("", "?", "?")
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount, kind = line.split()[:3]
        inside = folder == Path(mount) or Path(mount) in folder.parents
        if inside and len(mount) >= len(best[0]):
            best = (mount, device, kind)
    return f"{best[1]} ({best[2]}, mounted on {best[0]})"


@dataclass(frozen=True)
class Span:
    """What one writer did: files written, when it began and ended, the machine's CPU
    counters (busy, total) at both ends."""

    files: int
    began: float
    ended: float
    cpu_began: tuple[int, int]
    cpu_ended: tuple[int, int]


def write_files(folder: str, seconds: float, ready: threading.Barrier) -> Span:
    """Durable FILE_BYTES files written into `folder` for `seconds` after every writer has
    passed `ready`, each as the archive stores an object."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    pool = os.urandom(POOL_BYTES)
    ready.wait()
    cpu, began, n = _cpu_jiffies(), time.time(), 0
    end = began + seconds
    while time.time() < end:
        at = (n * 4104) % (POOL_BYTES - FILE_BYTES)
        data = n.to_bytes(8, "little") + pool[at + 8 : at + FILE_BYTES]
        write_atomic(out / f"{n:06d}.dcm", [data])
        n += 1
    return Span(n, began, time.time(), cpu, _cpu_jiffies())


def _threads(folders: list[str], seconds: float) -> list[Span]:
    ready = threading.Barrier(len(folders), timeout=BARRIER_SECONDS)
    with ThreadPoolExecutor(len(folders)) as pool:
        return list(pool.map(lambda f: write_files(f, seconds, ready), folders))


def _in_process(folder: str, seconds: float, ready: threading.Barrier, out: Queue[Span]) -> None:
    out.put(write_files(folder, seconds, ready))


def _processes(folders: list[str], seconds: float) -> list[Span]:
    """One spawned process per folder; the clock starts once all have started up."""
    ctx = get_context("spawn")
    ready, out = ctx.Barrier(len(folders), timeout=BARRIER_SECONDS), ctx.Queue()
    procs = [ctx.Process(target=_in_process, args=(f, seconds, ready, out)) for f in folders]
    try:
        for proc in procs:
            proc.start()
        return [out.get(timeout=BARRIER_SECONDS + seconds + 60) for _ in procs]
    finally:
        reap(procs)


def _writer_run(folder: Path, writers: int, kind: str, seconds: float) -> Run:
    """One run of `writers` writers (threads or processes), each into its own folder."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.sync()
    folders = [str(folder / f"writer{i}") for i in range(writers)]
    spans = (_processes if kind == "processes" else _threads)(folders, seconds)
    first, last = min(spans, key=lambda s: s.began), max(spans, key=lambda s: s.ended)
    busy, total = (e - b for e, b in zip(last.cpu_ended, first.cpu_began, strict=True))
    count = sum(s.files for s in spans)
    late = max(s.began for s in spans) - first.began
    shutil.rmtree(folder, ignore_errors=True)
    os.sync()
    return Run(
        last.ended - first.began,
        count,
        count * FILE_BYTES,
        busy=busy / total if total else 0.0,
        late=late,
    )


def _timed(name: str, action: Callable[[], Run], unit: str) -> Run:
    print(f"    {name} ...", end="", flush=True)
    run = action()
    print(f" {run.per_second:,.1f} {unit}, {run.mb_per_second:,.1f} MB/s", flush=True)
    return run


def _ingest_files(settings: BenchSettings) -> tuple[corpus_mod.Corpus, list[Path]]:
    """The CT corpus of the dimse part and the files of its four-association row."""
    corpus, _ = corpus_mod.ensure(
        settings.corpus_dir, settings.studies, settings.instances, settings.series_size
    )
    corpus_mod.warm(corpus)
    os.sync()
    return corpus, [f for study in corpus.studies[1:] for f in study.files]


def _count_back(server: Server, studies: list[corpus_mod.Study], expected: int) -> None:
    """An IMAGE-level C-FIND must count every instance sent (raises otherwise)."""
    dates = sorted(s.date for s in studies)
    uids = [s.uid for s in studies]
    ops.image_count(server.ae_title, server.port, f"{dates[0]}-{dates[-1]}", uids, expected)


def _ingest_run(settings: BenchSettings, corpus: corpus_mod.Corpus, files: list[Path]) -> Run:
    """Fresh Hounsfield (fsync on), `files` over four storescu associations, counted back."""
    server = start_hounsfield(
        settings.work_dir,
        free_port(),
        settings.timeout,
        settings.postgres,
        extra_env={"HOUNSFIELD_FSYNC": "true"},
    )
    try:
        run = _timed_store(server, files, settings.timeout)
        _count_back(server, corpus.studies[1:], len(files))
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)
        os.sync()
    return run


def _timed_store(server: Server, files: list[Path], timeout: float) -> Run:
    """`files` over four storescu associations to a started `server`: the time, the
    machine's and the server's CPU."""
    wait_ready(server)
    os.sync()
    before, cpu = cpu_split(server.pid), _cpu_jiffies()
    stored = ops.store(server.ae_title, server.port, files, WRITERS, timeout)
    busy, after = _busy_since(cpu), cpu_split(server.pid)
    user, system = (a - b for a, b in zip(after, before, strict=True))
    return Run(
        stored.seconds,
        stored.count,
        stored.nbytes,
        busy=busy,
        server_cpu=user + system,
        server_system=system,
    )


def _receive_run(settings: BenchSettings, files: list[Path]) -> Run:
    """The ingest's clients and files to DCMTK storescp keeping nothing: receiving alone."""
    sink = start_sink(settings.work_dir)
    try:
        return _timed_store(sink, files, settings.timeout)
    finally:
        sink.stop()


def _round(
    settings: BenchSettings, out: DiskResults, corpus: corpus_mod.Corpus, files: list[Path]
) -> None:
    """One round: the limit (each writer mode), the ingest, receiving alone; a failed step is
    recorded and the round goes on."""
    folder = settings.work_dir / "disk"
    limit: dict[str, float] = {}
    steps: list[tuple[str, str, Callable[[], Run], list[Run]]] = [
        (
            f"disk, {name}, {out.seconds:g}s",
            "files/s",
            partial(_writer_run, folder, writers, kind, out.seconds),
            out.writers.setdefault(name, []),
        )
        for name, writers, kind in MODES
    ]
    steps += [
        (
            f"ingest, {len(files)} instances, {WRITERS} associations",
            "inst/s",
            partial(_ingest_run, settings, corpus, files),
            out.ingest,
        ),
        (
            f"receiving alone, {len(files)} instances, {WRITERS} associations",
            "inst/s",
            partial(_receive_run, settings, files),
            out.receive,
        ),
    ]
    for name, unit, action, runs in steps:
        try:
            run = _timed(name, action, unit)
        except Exception as exc:
            print(f" FAILED\n      {str(exc).splitlines()[0]}", flush=True)
            out.errors.append(f"disk part, {name}: {exc}\n{traceback.format_exc(limit=4)}")
            continue
        runs.append(run)
        limit[name] = run.mb_per_second
    fours = [v for k, v in limit.items() if k.startswith(("disk, 4 threads", "disk, 4 processes"))]
    ingest = next((v for k, v in limit.items() if k.startswith("ingest")), None)
    if fours and ingest is not None:
        out.rounds.append(ingest / max(fours))


def measure(settings: BenchSettings) -> DiskResults:
    """Rounds of the disk's limit with one and four writers, Hounsfield's ingest, and the
    same clients to a receiver alone."""
    print("\n== disk", flush=True)
    out = DiskResults(
        seconds=float(settings.disk_seconds),
        repeats=settings.disk_repeats,
        folder=str(settings.work_dir),
        filesystem=filesystem_of(settings.work_dir.resolve()),
        index=settings.hounsfield_index,
        load=[os.getloadavg()[0]],
    )
    try:
        corpus, files = _ingest_files(settings)
    except Exception as exc:
        out.errors.append(f"disk part, corpus: {exc}\n{traceback.format_exc(limit=4)}")
        return out
    out.instances = len(files)
    out.instance_bytes = sum(f.stat().st_size for f in files)
    out.corpus = settings.corpus_dir.name
    for i in range(out.repeats):  # interleaved: the limit and the ingest a minute apart
        print(f"    round {i + 1} of {out.repeats}", flush=True)
        _round(settings, out, corpus, files)
    out.load.append(os.getloadavg()[0])
    return out
