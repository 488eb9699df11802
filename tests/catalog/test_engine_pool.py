"""An SQLite index has a connection for every thread that may read at once."""

from __future__ import annotations

from pathlib import Path

from hounsfield.db.engine import make_engine


def test_sqlite_engine_lends_a_connection_to_each_of_a_hundred_threads(tmp_path: Path) -> None:
    """The HTTP server alone runs 40 worker threads; SQLAlchemy's default pool of 5 + 10 made
    the sixteenth wait 30 s for a connection, then fail."""
    engine = make_engine(f"sqlite:///{tmp_path / 'index.db'}")
    engine.pool._timeout = 1  # type: ignore[attr-defined]  # fail fast if the pool is short
    conns = [engine.connect() for _ in range(100)]
    try:
        assert all(c.exec_driver_sql("SELECT 1").scalar() == 1 for c in conns)
    finally:
        for conn in conns:
            conn.close()
        engine.dispose()


def test_an_in_memory_sqlite_engine_still_works() -> None:
    engine = make_engine("sqlite://")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1


def test_postgresql_plans_each_execution_for_its_values(postgresql_url: str) -> None:
    """A prepared statement's generic plan for a study date range with LIMIT walked the study
    primary key and filtered; the archive's sessions plan every execution for its values."""
    engine = make_engine(postgresql_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_custom_plan"
    finally:
        engine.dispose()
