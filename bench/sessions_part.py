"""The sessions part: many concurrent viewer sessions against one node, Hounsfield then Orthanc."""

from __future__ import annotations

import os
import shutil
import time
import traceback
from collections.abc import Callable
from multiprocessing import get_context
from multiprocessing.queues import Queue
from pathlib import Path

from bench import corpus as corpus_mod
from bench import dicom_ops as ops
from bench import http_ops as web
from bench import sessions_client as client
from bench.memory import cpu_seconds
from bench.procs import free_port, reap
from bench.servers import Server, start_hounsfield, start_orthanc, wait_ready
from bench.sessions_stats import Cpu, Level, ServerRun, SessionsResults, level, seconds
from bench.settings import BenchSettings, load

WARMUP = 5.0  # seconds of load before the window; the sessions start within its first RAMP
RAMP = 2.0
DRAIN = 60.0  # seconds after the window for the requests still running to end
CONNECTIONS = 6  # per session, like a browser's six connections per host
PROCESSES = 2  # client processes sharing the sessions
REQUEST_TIMEOUT = 60.0
DWELL = (5.0, 15.0)  # seconds at most a session stays on a study (uniform) before the next
BARRIER_SECONDS = 60.0
SETTLE_LIMIT = 120.0  # longest wait for the server to go quiet after the data went in
QUIET = 0.05  # share of one core below which the server counts as quiet
REST_SECONDS = 5.0  # the at-rest run: one session, one connection, first images only


def levels_from_env() -> list[int]:
    """BENCH_SESSIONS_LEVELS: comma-separated session counts (default 50,100,200)."""
    raw = os.environ.get("BENCH_SESSIONS_LEVELS", "").strip() or "50,100,200"
    try:
        levels = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError as exc:
        raise SystemExit(f"BENCH_SESSIONS_LEVELS takes numbers, got {raw!r}") from exc
    if not levels or min(levels) < 1:
        raise SystemExit(f"BENCH_SESSIONS_LEVELS takes positive numbers, got {raw!r}")
    return levels


def seconds_from_env() -> float:
    """BENCH_SESSIONS_SECONDS: length of the measured window per level (default 30)."""
    raw = os.environ.get("BENCH_SESSIONS_SECONDS", "").strip() or "30"
    value = float(raw)
    if value < 1:
        raise SystemExit(f"BENCH_SESSIONS_SECONDS must be at least 1, got {raw!r}")
    return value


def _jiffies() -> tuple[int, int]:
    """Busy and total CPU time of the whole machine so far (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def _sample(server: int, clients: list[int]) -> tuple[float, float, tuple[int, int]]:
    return sum(cpu_seconds(p) for p in clients), cpu_seconds(server), _jiffies()


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def _cpu_over(server: int, clients: list[int], begin: float, end: float) -> Cpu:
    """CPU of the client processes, the server and the machine between `begin` and `end`."""
    _sleep_until(begin)
    c0, s0, m0 = _sample(server, clients)
    _sleep_until(end)
    c1, s1, m1 = _sample(server, clients)
    seconds = end - begin
    total = m1[1] - m0[1]
    machine = (m1[0] - m0[0]) / total if total > 0 else 0.0
    return Cpu((c1 - c0) / seconds, (s1 - s0) / seconds, machine)


def _plans(root: str, sessions: int, res: SessionsResults) -> list[client.Plan]:
    """The sessions split over the client processes."""
    count = min(res.processes, sessions)
    bounds = [sessions * i // count for i in range(count + 1)]
    return [
        client.Plan(
            root=root,
            sessions=bounds[i + 1] - bounds[i],
            first=bounds[i],
            total=sessions,
            ramp=res.ramp,
            until=res.warmup + res.seconds,
            drain=res.drain,
            connections=res.connections,
            timeout=res.timeout,
            dwell=res.dwell,
        )
        for i in range(count)
    ]


def _load(server: Server, sessions: int, res: SessionsResults) -> Level:
    """One level: client processes started together, the window timed from the same moment."""
    plans = _plans(server.dicomweb_root, sessions, res)
    ctx = get_context("spawn")
    barrier = ctx.Barrier(len(plans) + 1, timeout=BARRIER_SECONDS)
    results: Queue[client.ClientRun] = ctx.Queue()
    procs = [ctx.Process(target=client.in_process, args=(p, barrier, results)) for p in plans]
    try:
        for proc in procs:
            proc.start()
        barrier.wait()
        begin = time.time() + res.warmup
        end = begin + res.seconds
        cpu = _cpu_over(server.pid, [p.pid for p in procs if p.pid], begin, end)
        runs = [results.get(timeout=res.drain + BARRIER_SECONDS) for _ in procs]
    finally:
        reap(procs)
    return level(sessions, runs, begin, end, cpu)


def _studies_listed(server: Server) -> int:
    with web.client(REQUEST_TIMEOUT) as http:
        answer = http.get(
            f"{server.dicomweb_root}/studies",
            params={"limit": "101"},
            headers={"Accept": web.DICOM_JSON},
        )
    if answer.status_code != 200:
        raise RuntimeError(f"QIDO-RS study list: HTTP {answer.status_code}")
    return len(answer.json())


def _store(
    server: Server, corpus: corpus_mod.Corpus, settings: BenchSettings, run: ServerRun
) -> None:
    """The whole corpus by C-STORE, then every study must be in the study list."""
    files = [f for study in corpus.studies for f in study.files]
    print(
        f"    C-STORE {len(files)} instances, {settings.parallel} associations ...",
        end="",
        flush=True,
    )
    done = ops.store(server.ae_title, server.port, files, settings.parallel, settings.timeout)
    run.stored, run.store_seconds = done.count, done.seconds
    print(f" {done.seconds:.1f}s", flush=True)
    listed = _studies_listed(server)
    if listed != len(corpus.studies):
        raise RuntimeError(f"study list has {listed} studies, {len(corpus.studies)} were stored")


def _settle(server: Server, run: ServerRun) -> None:
    """Wait (bounded) until the server has used under QUIET of a core for two seconds running."""
    started = time.perf_counter()
    quiet, last = 0, cpu_seconds(server.pid)
    while quiet < 2 and time.perf_counter() - started < SETTLE_LIMIT:
        time.sleep(1.0)
        now = cpu_seconds(server.pid)
        quiet = quiet + 1 if now - last < QUIET else 0
        last = now
    run.settle_seconds = time.perf_counter() - started
    if quiet < 2:
        run.notes.append(f"still busy {SETTLE_LIMIT:.0f}s after the data went in; measured anyway")


def _at_rest(server: Server, res: SessionsResults) -> Level:
    """One session on one connection opening study after study up to the first image only:
    what each request costs with nothing else waiting."""
    plan = client.Plan(
        root=server.dicomweb_root,
        sessions=1,
        first=0,
        total=1,
        ramp=0.0,
        until=res.rest_seconds,
        drain=res.drain,
        connections=1,
        timeout=res.timeout,
        dwell=(0.0, 0.0),
    )
    out = client.run(plan)
    return level(1, [out], out.start, out.start + res.rest_seconds, Cpu(0.0, 0.0, 0.0))


def _line(lv: Level) -> str:
    return (
        f" {lv.requests_per_second:,.0f} req/s, {lv.mb_per_second:,.0f} MB/s, "
        f"p99 first image {seconds(lv.ttfi_at(0.99))}, {lv.failed} failed, "
        f"client CPU {lv.cpu.client:.0%}"
    )


def _levels(server: Server, res: SessionsResults, run: ServerRun) -> None:
    for sessions in res.levels:
        print(
            f"    {sessions} sessions, {res.warmup:g}s + {res.seconds:g}s ...", end="", flush=True
        )
        run.levels.append(_load(server, sessions, res))
        print(_line(run.levels[-1]), flush=True)


def _one(
    name: str,
    start: Callable[[], Server],
    corpus: corpus_mod.Corpus,
    settings: BenchSettings,
    res: SessionsResults,
) -> ServerRun:
    """Start one server on fresh storage, store the corpus, run every level, stop it."""
    print(f"  {name}", flush=True)
    run, server = ServerRun(name), None
    try:
        server = start()
        wait_ready(server)
        web.wait_http(f"{server.dicomweb_root}/studies?limit=1", 60)
        _store(server, corpus, settings, run)
        _settle(server, run)
        run.rest = _at_rest(server, res)
        _levels(server, res, run)
    except Exception as exc:
        print(f" FAILED\n      {str(exc).splitlines()[0]}", flush=True)
        tail = f"\nserver log (end):\n{server.log_tail()}" if server else ""
        run.errors.append(f"{name}: {exc}\n{traceback.format_exc(limit=4)}{tail}")
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.folder, ignore_errors=True)
            os.sync()
    return run


def _corpus(settings: BenchSettings) -> corpus_mod.Corpus:
    corpus, _ = corpus_mod.ensure(
        settings.corpus_dir, settings.studies, settings.instances, settings.series_size
    )
    corpus_mod.warm(corpus)
    os.sync()
    return corpus


def measure(settings: BenchSettings) -> SessionsResults:
    """Every level against Hounsfield, then against Orthanc, each server on its own."""
    print("\n== sessions", flush=True)
    started = time.perf_counter()
    res = SessionsResults(
        levels=levels_from_env(),
        seconds=seconds_from_env(),
        warmup=WARMUP,
        connections=CONNECTIONS,
        processes=PROCESSES,
        corpus=settings.corpus_dir.name,
        series_size=settings.series_size,
        index=settings.hounsfield_index,
        ramp=RAMP,
        drain=DRAIN,
        timeout=REQUEST_TIMEOUT,
        dwell=DWELL,
        rest_seconds=REST_SECONDS,
        load=[os.getloadavg()[0]],
    )
    try:
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        corpus = _corpus(settings)
    except Exception as exc:
        res.errors.append(f"sessions part, corpus: {exc}\n{traceback.format_exc(limit=4)}")
        return res
    servers: list[tuple[str, Callable[[], Server]]] = [
        (
            "Hounsfield",
            lambda: start_hounsfield(
                settings.work_dir, free_port(), settings.timeout, settings.postgres
            ),
        ),
        # Sessions come from their own loopback addresses, which Orthanc takes for remote
        # callers unless remote access is allowed.
        (
            "Orthanc",
            lambda: start_orthanc(
                settings.work_dir, free_port(), web=True, overrides={"RemoteAccessAllowed": True}
            ),
        ),
    ]
    for name, start in servers:
        res.servers.append(_one(name, start, corpus, settings, res))
    res.errors += [e for s in res.servers for e in s.errors]
    res.load.append(os.getloadavg()[0])
    res.minutes = (time.perf_counter() - started) / 60
    return res


if __name__ == "__main__":
    from bench import sessions_report

    print(sessions_report.text(measure(load())))
