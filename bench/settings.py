"""Benchmark settings read from BENCH_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / "work"
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
PARTS = (
    "dimse",
    "web",
    "queue",
    "compress",
    "forward",
    "reconcile",
    "cluster",
    "viewer",
    "disk",
    "scale",
    "sessions",
)
SPLICED = frozenset({"disk", "scale", "sessions"})  # parts that splice their own section
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432"


def _parts() -> frozenset[str]:
    raw = os.environ.get("BENCH_PARTS", "").strip()
    chosen = {p.strip().lower() for p in raw.split(",") if p.strip()} if raw else set(PARTS)
    unknown = chosen - set(PARTS)
    if unknown or not chosen:
        raise SystemExit(f"BENCH_PARTS takes some of {', '.join(PARTS)}, got {raw!r}")
    return frozenset(chosen)


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    value = int(raw) if raw else default
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class BenchSettings:
    """Sizes and loop counts of one benchmark run."""

    studies: int
    instances: int
    series_size: int
    parallel: int
    rounds: int  # rounds of the Hounsfield/Orthanc comparison; the table shows medians
    find_queries: int
    retrieve_repeats: int
    timeout: float
    work_dir: Path
    results_file: Path
    postgres: str | None
    parts: frozenset[str]
    qido_queries: int
    wado_repeats: int
    metadata_repeats: int
    render_repeats: int
    render_copies: int
    stow_instances: int
    stow_batch: int
    queue_items: int
    queue_repeats: int
    queue_threads: int | None  # None: Hounsfield's own default (queue_threads)
    queue_postgres: str | None  # PostgreSQL server for the queue part; None: SQLite only
    compress_instances: int
    compress_repeats: int
    forward_studies: int
    forward_instances: int
    forward_repeats: int
    link_instances: int
    link_associations: int
    link_rate_mbit: int
    link_rtt_ms: int
    reconcile_per_day: int
    reconcile_repeats: int
    disk_seconds: int
    disk_repeats: int

    @property
    def hounsfield_index(self) -> str:
        """Which database holds Hounsfield's index, for the report."""
        return "PostgreSQL index" if self.postgres else "SQLite index"

    @property
    def corpus_dir(self) -> Path:
        """The cached corpus for these sizes."""
        return self.work_dir / "corpus" / f"{self.studies}x{self.instances}x{self.series_size}"

    @property
    def stow_corpus_dir(self) -> Path:
        """The cached single-study corpus sent by STOW-RS and POST /instances."""
        return self.work_dir / "corpus" / f"stow-{self.stow_instances}"

    @property
    def dimse(self) -> bool:
        """Whether the DIMSE part runs."""
        return "dimse" in self.parts

    @property
    def web(self) -> bool:
        """Whether the DICOMweb part runs."""
        return "web" in self.parts

    @property
    def servers(self) -> bool:
        """Whether Hounsfield and Orthanc are started (the parts that compare them)."""
        return self.dimse or self.web

    @property
    def queue(self) -> bool:
        """Whether the WorkQueue part runs."""
        return "queue" in self.parts

    @property
    def compress(self) -> bool:
        """Whether the compression part runs."""
        return "compress" in self.parts

    @property
    def forward(self) -> bool:
        """Whether the forwarding part runs."""
        return "forward" in self.parts

    @property
    def forward_corpus_dir(self) -> Path:
        """The cached corpus forwarded over loopback (patients FWD001, ...)."""
        n, size = self.forward_instances, self.forward_series_size
        return self.work_dir / "corpus" / f"forward-{self.forward_studies}x{n}x{size}"

    @property
    def forward_series_size(self) -> int:
        """Instances per series of the forward corpora."""
        return min(50, self.forward_instances)

    @property
    def reconcile(self) -> bool:
        """Whether the reconciliation part runs."""
        return "reconcile" in self.parts

    @property
    def reconcile_corpus_dir(self) -> Path:
        """The cached month of the reconcile part (31 days of small CT instances)."""
        return self.work_dir / "corpus" / f"reconcile-31x{self.reconcile_per_day}"

    @property
    def disk(self) -> bool:
        """Whether the disk part runs."""
        return "disk" in self.parts

    @property
    def link_corpus_dir(self) -> Path:
        """The cached one-study corpus forwarded over the simulated link (patient LINK001)."""
        return self.work_dir / "corpus" / f"link-{self.link_instances}"


def _queue_postgres() -> str | None:
    raw = os.environ.get("BENCH_QUEUE_PG", "").strip()
    if raw.lower() in ("off", "none", "no", "0"):
        return None
    return raw or os.environ.get("BENCH_HOUNSFIELD_PG", "").strip() or DEFAULT_PG


def _optional_int(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    return _int(name, 1) if raw else None


def load() -> BenchSettings:
    """Settings from the environment (see bench/README.md for every variable)."""
    studies = _int("BENCH_STUDIES", 2, minimum=2)
    instances = _int("BENCH_INSTANCES", 1000, minimum=8)
    return BenchSettings(
        studies=studies,
        instances=instances,
        series_size=min(_int("BENCH_SERIES_SIZE", 100), instances),
        parallel=_int("BENCH_PARALLEL", 4),
        rounds=_int("BENCH_ROUNDS", 3),
        find_queries=_int("BENCH_FIND_QUERIES", 50),
        retrieve_repeats=_int("BENCH_RETRIEVE_REPEATS", 3),
        timeout=float(_int("BENCH_TIMEOUT", 900)),
        work_dir=WORK_DIR,
        results_file=Path(os.environ.get("BENCH_RESULTS", str(RESULTS_FILE))),
        postgres=os.environ.get("BENCH_HOUNSFIELD_PG", "").strip() or None,
        parts=_parts(),
        qido_queries=_int("BENCH_QIDO_QUERIES", 50),
        wado_repeats=_int("BENCH_WADO_REPEATS", 3),
        metadata_repeats=_int("BENCH_METADATA_REPEATS", 5),
        render_repeats=_int("BENCH_RENDER_REPEATS", 3),
        render_copies=_int("BENCH_RENDER_COPIES", 3),
        stow_instances=_int("BENCH_STOW_INSTANCES", 200),
        stow_batch=_int("BENCH_STOW_BATCH", 10),
        queue_items=_int("BENCH_QUEUE_ITEMS", 2000),
        queue_repeats=_int("BENCH_QUEUE_REPEATS", 3),
        queue_threads=_optional_int("BENCH_QUEUE_THREADS"),
        queue_postgres=_queue_postgres(),
        compress_instances=_int("BENCH_COMPRESS_INSTANCES", 50),
        compress_repeats=_int("BENCH_COMPRESS_REPEATS", 3),
        forward_studies=_int("BENCH_FORWARD_STUDIES", 2),
        forward_instances=_int("BENCH_FORWARD_INSTANCES", 250),
        forward_repeats=_int("BENCH_FORWARD_REPEATS", 3),
        link_instances=_int("BENCH_LINK_INSTANCES", 40, minimum=8),
        link_associations=_int("BENCH_LINK_ASSOCIATIONS", 4, minimum=2),
        link_rate_mbit=_int("BENCH_LINK_MBIT", 20),
        link_rtt_ms=_int("BENCH_LINK_RTT_MS", 40, minimum=0),
        reconcile_per_day=_int("BENCH_RECONCILE_STUDIES", 20),
        reconcile_repeats=_int("BENCH_RECONCILE_REPEATS", 3),
        disk_seconds=_int("BENCH_DISK_SECONDS", 10),
        disk_repeats=_int("BENCH_DISK_REPEATS", 3),
    )
