"""Benchmark settings read from BENCH_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / "work"
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
PARTS = ("dimse", "web", "queue", "compress")
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
    )
