"""An SQLite index has a connection for every thread that may read at once, and starts
its transactions as the archive needs them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from hounsfield.db import engine as db
from hounsfield.db.engine import make_engine
from hounsfield.errors import DatabaseUnavailable


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


def test_sqlite_writes_take_the_lock_up_front_and_reads_do_not(tmp_path: Path) -> None:
    """A write transaction begins IMMEDIATE (holding the write lock before its first
    statement), a read one plainly; both see their own work."""
    path = tmp_path / "index.db"
    engine = make_engine(f"sqlite:///{path}")
    with db.write(engine) as conn:
        conn.execute(text("CREATE TABLE t (v INTEGER)"))
    other = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    try:
        with db.write(engine) as conn:
            conn.execute(text("SELECT 1"))  # no write yet, but the lock is held
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("INSERT INTO t VALUES (1)")
            conn.execute(text("INSERT INTO t VALUES (2)"))
        with db.read(engine) as conn:
            assert conn.execute(text("SELECT v FROM t")).scalar_one() == 2
            other.execute("INSERT INTO t VALUES (3)")  # a reader does not hold the lock
    finally:
        other.close()
        engine.dispose()


def test_a_write_that_cannot_begin_is_database_unavailable(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE refused (the database stays locked past the busy timeout) is the
    archive's DatabaseUnavailable, as any other refused statement."""
    path = tmp_path / "index.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:  # the pool's one connection, made to give up at once
        conn.exec_driver_sql("PRAGMA busy_timeout=20")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DatabaseUnavailable, match="locked"), db.write(engine):
            pass
    finally:
        blocker.close()
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
