"""Benchmark settings read from BENCH_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / "work"
RESULTS_FILE = BENCH_DIR / "RESULTS.md"


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

    @property
    def hounsfield_index(self) -> str:
        """Which database holds Hounsfield's index, for the report."""
        return "PostgreSQL index" if self.postgres else "SQLite index"

    @property
    def corpus_dir(self) -> Path:
        """The cached corpus for these sizes."""
        return self.work_dir / "corpus" / f"{self.studies}x{self.instances}x{self.series_size}"


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
    )
