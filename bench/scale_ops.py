"""The archive's own operator functions, timed in this process: a count pass and the claim."""

from __future__ import annotations

import time
from datetime import date, timedelta

from bench.scale_data import Population, dicom_day
from bench.scale_model import Timing
from bench.servers import Server
from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.sites.devices import Device, add_device
from hounsfield.sites.reconcile import reconcile
from hounsfield.workqueue.queue import Queue, enqueue

MONTH_DAYS = 31
NOOP = "noop"


def month(pop: Population) -> tuple[date, date, int]:
    """The 31 days up to the last day with its full share of studies, and the instances
    dated within them."""
    days = pop.full_days or pop.days
    last = date(int(days[-1][:4]), int(days[-1][4:6]), int(days[-1][6:]))
    first = last - timedelta(days=MONTH_DAYS - 1)
    count = 0
    for n in range(MONTH_DAYS):
        for study in pop.by_day.get(dicom_day(first + timedelta(days=n)), []):
            count += pop.studies[study].instances
    return first, last, count


def count_passes(archive: Archive, node: Server, pop: Population, runs: int) -> Timing:
    """`runs` reconciliations of the month with the node itself as the peer (a device with
    its AE title, host and port): per-day counts from the index here, a STUDY-level C-FIND
    there, no difference, so no drill-down and no repair; each checked."""
    add_device(archive, Device(node.ae_title, "127.0.0.1", node.port, "the node itself"))
    part = archive.resolve(None).ae_title
    lo, hi, expected = month(pop)
    out = Timing()
    for _ in range(runs):
        started = time.perf_counter()
        report = reconcile(archive, part, node.ae_title, lo, hi)
        ms = 1000 * (time.perf_counter() - started)
        what = f"count pass {dicom_day(lo)}-{dicom_day(hi)}"
        out.add(ms, report.local_instances, expected, what)
        if report.state != "complete" or report.peer_instances != expected:
            out.wrong.append(
                f"{what}: state {report.state}, peer {report.peer_instances}, "
                f"missing {report.missing}, extra {report.extra} {report.error}"
            )
    return out


def claim_rate(archive: Archive, items: int) -> float:
    """Enqueue `items` noop items (one transaction), then claim them one by one with the
    queue's own claim as fast as this process can, completing each right after its claim as
    a worker would (the completions untimed); claims per second of claiming."""
    with db.write(archive.engine) as conn:
        for n in range(items):
            enqueue(conn, NOOP, {"n": n})
    queue = Queue(archive.engine, "scale-bench")
    claimed, seconds = 0, 0.0
    while True:
        started = time.perf_counter()
        item = queue.claim()
        seconds += time.perf_counter() - started
        if item is None:
            break
        queue.complete(item)
        claimed += 1
    if claimed != items:
        raise RuntimeError(f"claimed {claimed} of {items} items")
    return items / seconds
