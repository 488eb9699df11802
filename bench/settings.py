"""Benchmark settings read from BENCH_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / "work"
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
PARTS = ("dimse", "web")


def _parts() -> frozenset[str]:
    raw = os.environ.get("BENCH_PARTS", "").strip()
    chosen = {p.strip().lower() for p in raw.split(",") if p.strip()} if raw else set(PARTS)
    unknown = chosen - set(PARTS)
    if unknown or not chosen:
        raise SystemExit(f"BENCH_PARTS takes {' and/or '.join(PARTS)}, got {raw!r}")
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
    )
