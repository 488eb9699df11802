"""Engine set-up: SQLite in WAL mode with immediate write transactions, or a PostgreSQL pool."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError

from hounsfield.errors import DatabaseUnavailable

WRITE = "hounsfield_write"


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine tuned for the archive's access pattern on SQLite or PostgreSQL."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5},
    )


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the lock up front so two writers never deadlock on upgrade.
        immediate = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()


def _writer_lock(engine: Engine) -> AbstractContextManager[object]:
    """SQLite admits one writer; queueing this process's writers on a lock is fairer and
    faster than SQLite's busy handler, which sleeps with growing back-off."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    return _SQLITE_WRITERS.setdefault(engine, threading.Lock())


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction, committed on success; database outages become DatabaseUnavailable."""
    try:
        with _writer_lock(engine), engine.connect() as conn:
            conn = conn.execution_options(**{WRITE: True})
            with conn.begin():
                yield conn
    except OperationalError as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc.orig}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DatabaseUnavailable(f"database connection lost: {exc.orig}") from exc
        raise


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction; database outages become DatabaseUnavailable."""
    try:
        with engine.connect() as conn, conn.begin():
            yield conn
    except OperationalError as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc.orig}") from exc
