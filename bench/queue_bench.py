"""The queue part: WorkQueue throughput of `noop` items with 1 and 2 worker processes."""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import terminate
from bench.settings import REPO_DIR, BenchSettings

PG_DATABASE = "hounsfield_bench_queue"  # the only database this part creates and drops
PROCESS_COUNTS = (1, 2)


@dataclass
class QueueRun:
    """One drain of the queue: which database, how many processes, what it took."""

    database: str
    processes: int
    items: int
    threads: int = 0
    seconds: float | None = None  # from `go` until the last process finished its queue
    with_startup: float | None = None  # from spawning the processes until the last one exited
    shares: list[int] = field(default_factory=list)  # items run by each process
    cpu_seconds: float | None = None  # CPU time of all worker processes while draining
    samples: list[float] = field(default_factory=list)  # items/s of every repetition
    error: str = ""

    @property
    def per_second(self) -> float | None:
        """Items per second, start-up excluded."""
        return self.items / self.seconds if self.seconds else None


def _server_base(url: str) -> str:
    base = url.rstrip("/")
    return base.rsplit("/", 1)[0] if base.count("/") > 2 else base


def _fresh_postgres(server_url: str) -> str:
    import psycopg

    base = _server_base(server_url)
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DATABASE}")
    return f"{base}/{PG_DATABASE}"


def _drop_postgres(server_url: str) -> None:
    import psycopg

    base = _server_base(server_url)
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")


def _prepare(database_url: str, data_dir: Path, items: int) -> None:
    """Create the schema and enqueue `items` noop items in one transaction."""
    from hounsfield.archive.context import open_archive
    from hounsfield.db import engine as db
    from hounsfield.db import migrate
    from hounsfield.db.engine import make_engine
    from hounsfield.settings import Settings
    from hounsfield.workqueue.queue import enqueue

    settings = Settings(data_dir=data_dir, database_url=database_url, storage_reserve_bytes=0)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    archive = open_archive(settings)
    try:
        with db.write(archive.engine) as conn:
            for n in range(items):
                enqueue(conn, "noop", {"n": n})
    finally:
        archive.close()


def _counts(database_url: str, data_dir: Path) -> dict[str, int]:
    from hounsfield.archive.context import open_archive
    from hounsfield.settings import Settings
    from hounsfield.workqueue import admin

    settings = Settings(data_dir=data_dir, database_url=database_url, storage_reserve_bytes=0)
    archive = open_archive(settings)
    try:
        return dict(admin.counts(archive.engine))
    finally:
        archive.close()


def _read_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0.1))
    if not ready:
        raise RuntimeError("a worker process did not get ready in time")
    return proc.stdout.readline().strip()


def _spawn(
    database_url: str, data_dir: Path, node: str, threads: int | None, log: Path
) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "bench.queue_worker", database_url, str(data_dir)]
    args += ["--node", node]
    if threads is not None:
        args += ["--threads", str(threads)]
    with log.open("w") as err:
        return subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO_DIR
        )


def _drain(run: QueueRun, database_url: str, folder: Path, settings: BenchSettings) -> None:
    """Start the processes, wait until each is ready, say go, and time until all are done."""
    deadline = time.monotonic() + settings.timeout
    spawned = time.time()
    procs = [
        _spawn(database_url, folder, f"bench{n + 1}", settings.queue_threads, folder / f"w{n}.log")
        for n in range(run.processes)
    ]
    try:
        for proc in procs:
            if (line := _read_line(proc, deadline)) != "ready":
                raise RuntimeError(f"a worker process said {line!r} instead of ready")
        go = time.time()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [p.communicate(timeout=max(deadline - time.monotonic(), 1))[0] for p in procs]
        exited = time.time()
    except Exception:
        for proc in procs:
            terminate(proc)  # type: ignore[arg-type]
        raise
    failed = [(n, p.returncode) for n, p in enumerate(procs) if p.returncode != 0]
    if failed:
        n, code = failed[0]
        log = (folder / f"w{n}.log").read_text()[-2000:]
        raise RuntimeError(f"worker {n} exited {code}: {log}")
    figures = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    run.seconds = max(f["end"] for f in figures) - go
    run.with_startup = exited - spawned
    run.shares = [int(f["items"]) for f in figures]
    run.cpu_seconds = sum(float(f["cpu"]) for f in figures)
    run.threads = int(figures[0]["threads"])


def _one(database: str, processes: int, settings: BenchSettings, attempt: int) -> QueueRun:
    run = QueueRun(database, processes, settings.queue_items)
    folder = settings.work_dir / "queue" / f"{database.lower()}-{processes}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    label = (
        f"{settings.queue_items} noop items, {database}, {processes} process(es) "
        f"({attempt}/{settings.queue_repeats})"
    )
    print(f"    {label} ...", end="", flush=True)
    try:
        if database == "SQLite":
            url = f"sqlite:///{(folder / 'index.db').resolve()}"
        else:
            assert settings.queue_postgres is not None
            url = _fresh_postgres(settings.queue_postgres)
        _prepare(url, folder, settings.queue_items)
        _drain(run, url, folder, settings)
        counts = _counts(url, folder)
        if counts != {"completed": settings.queue_items} or sum(run.shares) != run.items:
            raise RuntimeError(f"after the run: {counts}, items run per process {run.shares}")
        print(f" {run.seconds:.2f}s, {run.per_second:,.0f} items/s", flush=True)
    except Exception as exc:
        print(f" FAILED\n      {str(exc).splitlines()[0]}", flush=True)
        run.error = f"{label}: {exc}\n{traceback.format_exc(limit=4)}"
    return run


def _median(database: str, processes: int, settings: BenchSettings) -> QueueRun:
    """Repeat on a fresh database each time; the run with the median time, or the failure."""
    runs = [_one(database, processes, settings, n + 1) for n in range(settings.queue_repeats)]
    failed = [r for r in runs if r.error]
    if failed:
        return failed[0]
    runs.sort(key=lambda r: r.seconds or 0.0)
    kept = runs[len(runs) // 2]
    kept.samples = [r.per_second or 0.0 for r in runs]
    return kept


def measure(settings: BenchSettings) -> list[QueueRun]:
    """Every (database, processes) combination, each run on a freshly created database."""
    print("\n== WorkQueue (noop items)", flush=True)
    databases = ["SQLite"] + (["PostgreSQL"] if settings.queue_postgres else [])
    runs = [_median(db, n, settings) for db in databases for n in PROCESS_COUNTS]
    if settings.queue_postgres:
        try:
            _drop_postgres(settings.queue_postgres)
        except Exception as exc:
            print(f"    could not drop {PG_DATABASE}: {exc}", flush=True)
    return runs
