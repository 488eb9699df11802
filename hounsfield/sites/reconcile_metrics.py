"""Prometheus metrics of reconciliation per partition and peer, read from the stored reports."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from hounsfield.db import engine as db
from hounsfield.db.tables import reconcile_report
from hounsfield.sites.reconcile_reports import COMPLETE
from hounsfield.workqueue.items import utc

log = logging.getLogger(__name__)
LAST = "hounsfield_reconcile_last_complete_timestamp_seconds"
LEFT = "hounsfield_reconcile_differences"


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            LAST,
            "When the last complete reconciliation of a partition with a peer finished",
            labels=["partition", "peer"],
        ),
        GaugeMetricFamily(
            LEFT,
            "Objects held by one side only after the last complete reconciliation "
            "(side: missing here, or extra: held here only)",
            labels=["partition", "peer", "side"],
        ),
    )


class ReconcileCollector(Collector):
    """Reads the newest complete report of each (partition, peer) at every scrape."""

    def __init__(self) -> None:
        self.engine: Engine | None = None

    def describe(self) -> Iterator[Metric]:
        yield from _families()

    def collect(self) -> Iterator[Metric]:
        last, left = _families()
        if self.engine is not None:
            try:
                rows = _newest_complete(self.engine)
            except Exception as exc:  # a scrape never fails for this
                log.warning("reconciliation metrics unavailable: %s", exc)
                rows = []
            for part, peer, finished, missing, extra in rows:
                last.add_metric([part, peer], finished)
                left.add_metric([part, peer, "missing"], missing)
                left.add_metric([part, peer, "extra"], extra)
        yield last
        yield left


def _newest_complete(engine: Engine) -> list[tuple[str, str, float, int, int]]:
    r = reconcile_report
    newest = (
        select(func.max(r.c.pk))
        .where(r.c.state == COMPLETE)
        .group_by(r.c.partition_ae, r.c.peer_ae)
    )
    stmt = select(
        r.c.partition_ae, r.c.peer_ae, r.c.finished_at, r.c.missing_left, r.c.extra_left
    ).where(r.c.pk.in_(newest))
    with db.read(engine) as conn:
        rows = conn.execute(stmt).all()
    return [
        (str(p), str(q), utc(at).timestamp() if at else 0.0, int(m), int(e))  # type: ignore[union-attr]
        for p, q, at, m, e in rows
    ]


COLLECTOR = ReconcileCollector()
_lock = threading.Lock()
_installed: list[bool] = []


def install(engine: Engine) -> None:
    """Show these metrics in /metrics, read through `engine` (the node's bootstrap and web
    application call this; again is harmless, the last engine is used)."""
    with _lock:
        COLLECTOR.engine = engine
        if not _installed:
            REGISTRY.register(COLLECTOR)
            _installed.append(True)
