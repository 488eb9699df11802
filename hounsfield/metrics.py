"""Prometheus metrics: objects and bytes in and out, associations, failures, latencies."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

INSTANCES_RECEIVED = Counter(
    "hounsfield_instances_received", "Objects offered to the archive", ["source", "outcome"]
)
BYTES_RECEIVED = Counter("hounsfield_bytes_received", "Bytes of objects stored", ["source"])
INSTANCES_SENT = Counter("hounsfield_instances_sent", "Objects sent to peers", ["service"])
BYTES_SENT = Counter("hounsfield_bytes_sent", "Bytes of objects sent to peers", ["service"])
ASSOCIATIONS = Counter(
    "hounsfield_associations", "DICOM associations by DIMSE process", ["event", "process"]
)
ACTIVE_ASSOCIATIONS_NAME = "hounsfield_active_associations"
ACTIVE_ASSOCIATIONS = Gauge(ACTIVE_ASSOCIATIONS_NAME, "DICOM associations now open")
FAILURES = Counter("hounsfield_failures", "Operations refused or failed", ["operation", "reason"])
LATENCY = Histogram(
    "hounsfield_operation_seconds",
    "Latency of archive operations",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# A node with several processes (hounsfield.node.children) shows their values added to
# each process's own: each process reports a snapshot of the metrics above.
OWN = (
    INSTANCES_RECEIVED,
    BYTES_RECEIVED,
    INSTANCES_SENT,
    BYTES_SENT,
    ASSOCIATIONS,
    ACTIVE_ASSOCIATIONS,
    FAILURES,
    LATENCY,
)
# (family, sample name, sorted label pairs, value) rows
Snapshot = list[tuple[str, str, list[tuple[str, str]], float]]
_SOURCES: list[Callable[[], Iterable[Snapshot]]] = []


def snapshot() -> Snapshot:
    """This process's values of the archive's own metrics."""
    rows: Snapshot = []
    for metric in OWN:
        for family in metric.collect():
            for s in family.samples:
                if not s.name.endswith("_created"):
                    rows.append((family.name, s.name, sorted(s.labels.items()), s.value))
    return rows


def add_snapshot_source(source: Callable[[], Iterable[Snapshot]]) -> None:
    """Add the snapshots `source` returns to what /metrics shows."""
    _SOURCES.append(source)


def snapshot_sources() -> list[Callable[[], Iterable[Snapshot]]]:
    """The sources added with `add_snapshot_source`."""
    return list(_SOURCES)


class _NodeCollector(Collector):
    """The default registry, with other processes' snapshots added to the archive's metrics."""

    def collect(self) -> Iterator[Metric]:
        extra: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
        for source in _SOURCES:
            for snap in source():
                for owner, name, pairs, value in snap:
                    key = (owner, name, tuple((k, v) for k, v in pairs))
                    extra[key] = extra.get(key, 0.0) + value
        if not extra:
            yield from REGISTRY.collect()
            return
        for family in REGISTRY.collect():
            merged = Metric(family.name, family.documentation, family.type, family.unit)
            for s in family.samples:
                key = (family.name, s.name, tuple(sorted(s.labels.items())))
                merged.add_sample(s.name, s.labels, s.value + extra.pop(key, 0.0), s.timestamp)
            for key, value in list(extra.items()):
                if key[0] == family.name:
                    merged.add_sample(key[1], dict(key[2]), value)
                    del extra[key]
            yield merged


NODE_REGISTRY = CollectorRegistry(auto_describe=False)
NODE_REGISTRY.register(_NodeCollector())
