"""The scale part: searches, counts and claims as the PostgreSQL index grows, and Orthanc's."""

from __future__ import annotations

import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from itertools import pairwise
from pathlib import Path

from sqlalchemy import text

from bench import scale_index, scale_ops, scale_report
from bench import scale_queries as sq
from bench import scale_servers as ss
from bench.scale_data import SEED, Population, Study
from bench.scale_model import CFIND, QIDO, ScaleResults, Step, duration
from bench.servers import Server
from bench.settings import DEFAULT_PG, BenchSettings, load
from hounsfield.archive.context import Archive

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
DATABASE = "hounsfield_bench_scale"  # this part's index, dropped at the end
ORTHANC_DATABASE = "hounsfield_bench_scale_orthanc"  # Orthanc's index, dropped at the end
STARTUP_SECONDS = 180.0
PILOT_INSTANCES = 2000  # Orthanc's first fill starts with this many, to measure its rate
CHUNK_INSTANCES = 5000  # then parts of this many, the budget checked after each
ORTHANC_BUDGET = 1200  # seconds a fill of Orthanc may take (BENCH_SCALE_ORTHANC_SECONDS)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    value = int(raw) if raw else default
    if value < 1:
        raise SystemExit(f"{name} must be at least 1, got {value}")
    return value


def sizes() -> list[int]:
    """BENCH_SCALE_SIZES: index sizes in instances, comma-separated, growing."""
    raw = os.environ.get("BENCH_SCALE_SIZES", "").strip()
    chosen = [int(x) for x in raw.replace("_", "").split(",") if x.strip()] if raw else []
    chosen = chosen or list(DEFAULT_SIZES)
    if any(b <= a for a, b in pairwise(chosen)) or chosen[0] < 100:
        raise SystemExit(f"BENCH_SCALE_SIZES grows from at least 100, got {raw!r}")
    return chosen


@dataclass
class _Run:
    """The state of one run: settings, results, the population, databases and servers."""

    settings: BenchSettings
    out: ScaleResults
    server_url: str
    work: Path
    pop: Population = field(default_factory=Population)
    index_url: str = ""
    archive: Archive | None = None
    orthanc: Server | None = None
    orthanc_url: str = ""
    orthanc_studies: int = 0  # studies of the population Orthanc holds
    orthanc_rate: float | None = None  # instances per second of its last fill
    orthanc_done: bool = False  # a size was beyond the budget: no further fills


def _attempt(run: _Run, name: str, action: Callable[[], None]) -> None:
    """Run one measure; a failure is printed and kept, the part goes on."""
    try:
        action()
    except Exception as exc:
        print(f"      {name} FAILED: {str(exc).splitlines()[0] if str(exc) else exc!r}")
        run.out.errors.append(f"scale, {name}: {exc}\n{traceback.format_exc(limit=4)}")


def _say(step: Step, what: str) -> None:
    print(f"    {step.server} {step.target:,}: {what}", flush=True)


def _postgres(archive: Archive) -> str:
    with archive.engine.connect() as conn:
        version = conn.scalar(text("SHOW server_version"))
        buffers = conn.scalar(text("SHOW shared_buffers"))
    return f"PostgreSQL {version}, shared_buffers {buffers}"


def _round(run: _Run, step: Step, server: Server, number: int) -> None:
    """One round of study searches, QIDO-RS then C-FIND, with keys of its own draw."""
    seed = SEED + 10 * step.target + number
    queries = sq.study_queries(run.pop, run.out.queries, len(sq.QIDO_KINDS), seed)
    step.absorb(QIDO, sq.qido_studies(server.dicomweb_root, queries))
    cfind = [q for q in queries if q.kind in sq.KINDS]
    step.absorb(CFIND, sq.cfind_studies(server.ae_title, server.port, cfind))


def _searches(run: _Run, step: Step, server: Server) -> None:
    """The rounds of study searches of this size, then one day's IMAGE count."""
    step.load.append(os.getloadavg()[0])
    for number in range(run.out.rounds):
        _round(run, step, server, number)
    for protocol in (QIDO, CFIND):
        found, rounds = step.search(protocol), step.rounds.get(protocol, [])
        if found is not None:
            each = ", ".join(f"{r:.1f}" for r in rounds)
            _say(step, f"{protocol} p50 {found.p50:.1f} ms, p99 of each round {each} ms")
    days = sq.count_days(run.pop, run.out.repeats)
    step.image_day = sq.image_day(server.ae_title, server.port, days)
    _say(step, f"IMAGE count of a day, median {step.image_day.p50:.0f} ms")
    step.load.append(os.getloadavg()[0])


def _hounsfield_ops(run: _Run, step: Step, node: Server) -> None:
    assert run.archive is not None
    step.count_pass = scale_ops.count_passes(run.archive, node, run.pop, run.out.repeats)
    _say(step, f"count pass of a month, median {step.count_pass.p50:.0f} ms")
    step.claims = [
        scale_ops.claim_rate(run.archive, run.out.claim_items) for _ in range(run.out.repeats)
    ]
    _say(step, f"claims {step.claim_rate:,.0f}/s")


def _measure_node(run: _Run, step: Step) -> None:
    started, errors = time.perf_counter(), len(run.out.errors)
    node = ss.start_node(run.work, run.index_url)
    try:
        ss.ready(node, STARTUP_SECONDS)
        _attempt(run, f"Hounsfield {step.target} searches", partial(_searches, run, step, node))
        _attempt(run, f"Hounsfield {step.target} ops", partial(_hounsfield_ops, run, step, node))
    finally:
        node.stop()
        if len(run.out.errors) > errors:
            run.out.errors[-1] += f"\nnode log (end):\n{node.log_tail()}"
    step.measure_seconds = time.perf_counter() - started


def _grow(run: _Run, step: Step) -> None:
    """The population and the index to this step's size, then ANALYZE."""
    assert run.archive is not None
    before, previous = run.pop.instances, run.out.hounsfield[-1].target if run.out.hounsfield else 0
    run.pop.grow_to(step.target)
    folder = run.work / "hf"
    step.fill_seconds = scale_index.load_parallel(
        run.index_url, folder, (previous, step.target), run.out.loaders
    )
    step.added = run.pop.instances - before
    step.analyze_seconds = scale_index.analyze(run.archive)
    shape = scale_index.shape(run.archive)
    step.instances, step.studies, step.series = shape.instances, shape.studies, shape.series
    step.patients, step.database_bytes = shape.patients, shape.database_bytes
    if step.instances != run.pop.instances:
        raise RuntimeError(f"the index holds {step.instances} instances, {run.pop.instances} made")
    _say(
        step,
        f"{step.added:,} instances added in {step.fill_seconds:.0f}s ({step.fill_rate:,.0f}/s)",
    )


def _hounsfield(run: _Run, target: int) -> None:
    step = Step("Hounsfield", target)
    _grow(run, step)
    run.out.hounsfield.append(step)
    _measure_node(run, step)


def _orthanc_start(run: _Run) -> Server:
    if run.orthanc is None:
        run.orthanc_url = scale_index.fresh_database(run.server_url, ORTHANC_DATABASE)
        run.orthanc = ss.start_orthanc_pg(run.work, run.orthanc_url)
        ss.ready(run.orthanc, STARTUP_SECONDS)
        run.out.orthanc_version = ss.orthanc_version(run.orthanc)
    return run.orthanc


def _fill(run: _Run, server: Server, studies: list[Study], name: str) -> float:
    folder = run.work / "orthanc-in" / name
    try:
        folders = ss.write_files(run.pop, studies, folder)
        return ss.store(server, folders, run.settings.timeout)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _parts(studies: list[Study], first: int) -> list[list[Study]]:
    """`studies` cut into parts of about CHUNK_INSTANCES instances (the first of `first`)."""
    parts: list[list[Study]] = [[]]
    count, limit = 0, first
    for study in studies:
        if count >= limit:
            parts.append([])
            count, limit = 0, CHUNK_INSTANCES
        parts[-1].append(study)
        count += study.instances
    return [p for p in parts if p]


def _too_slow(run: _Run, step: Step, rest: int) -> bool:
    """Whether the time spent on this size plus `rest` instances at the last measured rate
    passes the budget (then Orthanc is stopped: no further size is filled)."""
    rate = run.orthanc_rate
    if rate is None or step.fill_seconds + rest / rate <= run.out.budget:
        return False
    done, total = step.added - rest, step.fill_seconds + rest / rate
    so_far = (
        f"{done:,} of the {step.added:,} instances to add stored in {step.fill_seconds:.0f} s, "
        if done
        else f"{step.added:,} instances to add, "
    )
    run.out.orthanc_skipped[step.target] = (
        f"not run: {so_far}the last ones at {rate:,.0f} instances/s; the fill would take "
        f"about {duration(total)} in all (budget {duration(run.out.budget)})"
    )
    _say(step, run.out.orthanc_skipped[step.target])
    run.orthanc_done = True
    if run.orthanc is not None:
        run.orthanc.stop()
    return True


def _fill_orthanc(run: _Run, step: Step) -> bool:
    """Orthanc brought to the population's size in parts, each C-STOREd and timed; False
    once the budget would not hold (a first part of PILOT_INSTANCES gives the first rate)."""
    server = _orthanc_start(run)
    studies = run.pop.studies[run.orthanc_studies :]
    step.added = rest = sum(s.instances for s in studies)
    if _too_slow(run, step, rest):
        return False
    first = PILOT_INSTANCES if run.orthanc_rate is None else CHUNK_INSTANCES
    for number, part in enumerate(_parts(studies, first)):
        count = sum(s.instances for s in part)
        seconds = _fill(run, server, part, f"{step.target}-{number}")
        step.fill_seconds += seconds
        run.orthanc_rate = count / seconds
        run.orthanc_studies += len(part)
        rest -= count
        if rest and _too_slow(run, step, rest):
            return False
    return True


def _orthanc(run: _Run, target: int) -> None:
    step = Step("Orthanc", target)
    if run.orthanc_done:
        run.out.orthanc_skipped[target] = "not run: it was not run at a smaller size"
        return
    if not _fill_orthanc(run, step):
        return
    assert run.orthanc is not None
    counts = ss.orthanc_counts(run.orthanc)
    step.instances, step.studies = counts["CountInstances"], counts["CountStudies"]
    step.patients, step.series = counts["CountPatients"], counts["CountSeries"]
    _say(
        step,
        f"{step.added:,} instances stored in {step.fill_seconds:.0f}s ({step.fill_rate:,.0f}/s)",
    )
    if step.instances != run.pop.instances:
        raise RuntimeError(f"Orthanc holds {step.instances} instances, {run.pop.instances} sent")
    run.out.orthanc.append(step)
    started = time.perf_counter()
    _searches(run, step, run.orthanc)
    step.measure_seconds = time.perf_counter() - started


def _one_size(run: _Run, target: int) -> None:
    print(f"  -- {target:,} instances", flush=True)
    _hounsfield(run, target)
    errors = len(run.out.errors)
    _attempt(run, f"Orthanc {target}", partial(_orthanc, run, target))
    if len(run.out.errors) > errors and not run.orthanc_done:
        run.orthanc_done = True  # not started again at the larger sizes
        if run.orthanc is not None:
            run.orthanc.stop()


def _clean(run: _Run) -> None:
    """Stop Orthanc, close the index, drop both databases, remove the part's folder."""
    if run.orthanc is not None:
        run.orthanc.stop()
    if run.archive is not None:
        run.archive.close()
    for name in (DATABASE, ORTHANC_DATABASE):
        _attempt(run, f"drop {name}", partial(scale_index.drop_database, run.server_url, name))
    shutil.rmtree(run.work, ignore_errors=True)


def _results() -> ScaleResults:
    return ScaleResults(
        sizes=sizes(),
        queries=_env_int("BENCH_SCALE_QUERIES", 40),
        rounds=_env_int("BENCH_SCALE_ROUNDS", 3),
        repeats=_env_int("BENCH_SCALE_REPEATS", 3),
        claim_items=_env_int("BENCH_SCALE_CLAIMS", 1000),
        loaders=_env_int("BENCH_SCALE_LOADERS", scale_index.LOADERS),
        budget=float(_env_int("BENCH_SCALE_ORTHANC_SECONDS", ORTHANC_BUDGET)),
        load=[os.getloadavg()[0]],
    )


def measure(settings: BenchSettings) -> ScaleResults:
    """Grow one PostgreSQL index through the sizes of BENCH_SCALE_SIZES and measure a node on
    it at each; Orthanc on PostgreSQL beside it at the sizes it can be filled in time."""
    out = _results()
    print(f"\n== scale: {', '.join(f'{s:,}' for s in out.sizes)} instances", flush=True)
    started = time.perf_counter()
    server_url = os.environ.get("BENCH_SCALE_PG", "").strip() or settings.postgres or DEFAULT_PG
    run = _Run(settings, out, server_url, settings.work_dir / "scale")
    try:
        shutil.rmtree(run.work, ignore_errors=True)
        run.index_url = scale_index.fresh_database(server_url, DATABASE)
        run.archive = scale_index.open_index(run.index_url, run.work / "hf")
        out.postgres = _postgres(run.archive)
        for target in out.sizes:
            _one_size(run, target)
    except Exception as exc:
        print(f"    FAILED: {str(exc).splitlines()[0] if str(exc) else exc!r}", flush=True)
        out.errors.append(f"scale: {exc}\n{traceback.format_exc(limit=6)}")
    finally:
        _clean(run)
    out.seconds = time.perf_counter() - started
    out.load.append(os.getloadavg()[0])
    return out


def main() -> int:
    """Run the part alone, print its summary; with BENCH_RESULTS set, splice its section
    into that file (created when missing)."""
    settings = load()
    started_at = datetime.now().astimezone()
    res = measure(settings)
    print("\n" + scale_report.text(res))
    if os.environ.get("BENCH_RESULTS", "").strip():
        path = settings.results_file
        before = path.read_text() if path.is_file() else ""
        path.write_text(scale_report.insert(before, res, started_at))
        print(f"\nwritten {path}")
    return 1 if res.errors else 0


if __name__ == "__main__":
    sys.exit(main())
