"""The measurement sequence run against one server: ingest, query, retrieve, memory."""

from __future__ import annotations

import traceback
from collections.abc import Callable

from bench import dicom_ops as ops
from bench import web_scenario
from bench.memory import RssSampler, cpu_seconds, peak_rss_mb
from bench.servers import MOVE_DESTINATION
from bench.steps import Context, Measurements, median_by
from bench.steps import timed as _timed

__all__ = ["Context", "Measurements", "measure"]


def _ingest(c: Context) -> None:
    s, first = c.server, c.corpus.studies[0].files
    rest = [f for st in c.corpus.studies[1:] for f in st.files]
    n = c.settings.parallel
    cpu_before = cpu_seconds(s.pid)
    with RssSampler(s.pid) as sampler:
        one = _timed(
            f"C-STORE {len(first)} instances, 1 association",
            lambda: ops.store(s.ae_title, s.port, first, 1, c.settings.timeout),
        )
        many = _timed(
            f"C-STORE {len(rest)} instances, {n} associations",
            lambda: ops.store(s.ae_title, s.port, rest, n, c.settings.timeout),
        )
    cpu = cpu_seconds(s.pid) - cpu_before
    c.m.values |= {
        "store1_ips": one.per_second,
        "store1_mbps": one.mb_per_second,
        "storeN_ips": many.per_second,
        "storeN_mbps": many.mb_per_second,
        "ingest_rss_mb": sampler.peak_mb,
        "ingest_cpu_ms": cpu * 1000 / (one.count + many.count),
    }


def _image_count(c: Context) -> None:
    s, corpus = c.server, c.corpus
    uids = [st.uid for st in corpus.studies]
    count = _timed(
        "C-FIND IMAGE level, StudyDate range",
        lambda: ops.image_count(s.ae_title, s.port, corpus.date_range, uids, corpus.instance_count),
    )
    c.m.values["image_count_s"] = count.seconds
    c.m.notes.append(f"IMAGE-level count: {count.note}, {count.count} matches")


def _find(c: Context) -> None:
    s, runs = c.server, c.settings.find_queries
    uids = [st.uid for st in c.corpus.studies]
    latency = _timed(
        f"C-FIND STUDY level x{runs}, one association",
        lambda: ops.find_latency(s.ae_title, s.port, uids, runs),
    )
    c.m.values |= {"find_ms": latency.median_ms, "find_p90_ms": latency.p90_ms}
    if latency.wrong:
        c.m.notes.append(
            f"WARNING: {len(latency.wrong)} of {latency.runs} STUDY-level C-FINDs answered "
            f"wrongly (timed all the same); first: {latency.wrong[0]}"
        )
        print(f"      {len(latency.wrong)} wrong answers, first: {latency.wrong[0]}", flush=True)


def _findscu(c: Context) -> None:
    s, runs = c.server, c.settings.find_queries
    uids = [st.uid for st in c.corpus.studies]
    latency = _timed(
        f"C-FIND STUDY level x{runs}, findscu processes",
        lambda: ops.findscu_latency(s.ae_title, s.port, uids, runs, c.settings.timeout),
    )
    c.m.values["findscu_ms"] = latency.median_ms


def _median_run(name: str, repeats: int, action: Callable[[], ops.Timed]) -> ops.Timed:
    """Run `action` `repeats` times and keep the run with the median wall time."""
    return median_by(name, repeats, action, lambda r: r.seconds)


def _get(c: Context) -> None:
    s, study = c.server, c.corpus.studies[0]
    series = study.series[0]
    out = c.settings.work_dir / "getscu"
    got = _median_run(
        f"C-GET series of {len(series.files)}",
        c.settings.retrieve_repeats,
        lambda: ops.c_get(
            s.ae_title, s.port, study.uid, series.uid, len(series.files), out, c.settings.timeout
        ),
    )
    c.m.values |= {"get_s": got.seconds, "get_ips": got.per_second}


def _move(c: Context) -> None:
    s, study = c.server, c.corpus.studies[0]
    series = study.series[0]
    moved = _median_run(
        f"C-MOVE series of {len(series.files)}",
        c.settings.retrieve_repeats,
        lambda: ops.c_move(
            s.ae_title,
            s.port,
            study.uid,
            series.uid,
            len(series.files),
            MOVE_DESTINATION,
            c.storescp_dir,
            c.settings.timeout,
        ),
    )
    c.m.values |= {"move_s": moved.seconds, "move_ips": moved.per_second}
    if c.storescp_port:  # what the destination takes without any archive: C-MOVE's floor
        floor = _median_run(
            f"storescu of the series to storescp, {len(series.files)}",
            c.settings.retrieve_repeats,
            lambda: ops.store_to(
                MOVE_DESTINATION, c.storescp_port, series.files, c.storescp_dir, c.settings.timeout
            ),
        )
        c.m.values |= {"move_floor_s": floor.seconds}


STEPS: tuple[tuple[str, Callable[[Context], None]], ...] = (
    ("ingest", _ingest),
    ("C-FIND IMAGE count", _image_count),
    ("C-FIND STUDY", _find),
    ("C-FIND STUDY (findscu)", _findscu),
    ("C-GET", _get),
    ("C-MOVE", _move),
)
FATAL = (_ingest, *web_scenario.FATAL)


def _run(c: Context, steps: tuple[tuple[str, Callable[[Context], None]], ...]) -> bool:
    """Run steps in order, recording failures; False if a fatal (ingest) step failed."""
    for name, step in steps:
        try:
            step(c)
        except Exception as exc:
            print(f" FAILED\n      {str(exc).splitlines()[0]}", flush=True)
            c.m.errors.append(f"{name}: {exc}\n{traceback.format_exc(limit=4)}")
            if step in FATAL:
                return False
    return True


def measure(c: Context) -> None:
    """Run the DIMSE part and then the DICOMweb part, as BENCH_PARTS asks.

    A failed ingest ends the sequence: nothing after it would mean anything.
    """
    ok = True
    if c.settings.dimse:
        ok = _run(c, STEPS)
    elif c.settings.web:
        ok = _run(c, (("ingest (set-up)", web_scenario.setup_ingest),))
    if ok and c.settings.web:
        _run(c, web_scenario.STEPS)
    c.m.values["vmhwm_mb"] = peak_rss_mb(c.server.pid)
