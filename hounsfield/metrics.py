"""Prometheus metrics: objects and bytes in and out, associations, failures, latencies."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INSTANCES_RECEIVED = Counter(
    "hounsfield_instances_received", "Objects offered to the archive", ["source", "outcome"]
)
BYTES_RECEIVED = Counter("hounsfield_bytes_received", "Bytes of objects stored", ["source"])
INSTANCES_SENT = Counter("hounsfield_instances_sent", "Objects sent to peers", ["service"])
BYTES_SENT = Counter("hounsfield_bytes_sent", "Bytes of objects sent to peers", ["service"])
ASSOCIATIONS = Counter("hounsfield_associations", "DICOM associations", ["event"])
ACTIVE_ASSOCIATIONS = Gauge("hounsfield_active_associations", "DICOM associations now open")
FAILURES = Counter("hounsfield_failures", "Operations refused or failed", ["operation", "reason"])
LATENCY = Histogram(
    "hounsfield_operation_seconds",
    "Latency of archive operations",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
