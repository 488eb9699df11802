"""Engine set-up: SQLite in WAL mode with immediate write transactions, or a PostgreSQL pool."""

from __future__ import annotations

import fcntl
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from hounsfield.errors import DatabaseUnavailable

WRITE = "hounsfield_write"
# SQLite connections are file handles: enough for every thread that may read at once (the HTTP
# server's 40 worker threads, associations, the work queue), where SQLAlchemy's default of
# 5 + 10 made requests under load wait 30 s for a connection and fail.
SQLITE_POOL, SQLITE_OVERFLOW = 16, 112


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
        # psycopg prepares a statement on the server after five runs, and PostgreSQL may then
        # keep a generic plan: for a study date range with LIMIT that plan walked the study
        # primary key and filtered (20 ms at a million instances, 0.3 ms planned for the
        # values). Each execution is planned for its values.
        connect_args={"connect_timeout": 5, "options": "-c plan_cache_mode=force_custom_plan"},
    )


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    in_memory = not database or database == ":memory:" or "mode=memory" in url
    pool = {} if in_memory else {"pool_size": SQLITE_POOL, "max_overflow": SQLITE_OVERFLOW}
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

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
        # A writer takes the lock up front so two writers never deadlock on upgrade. Sent on
        # the driver's connection: through SQLAlchemy's statement machinery it took two
        # thirds of an empty transaction's time (a stored object runs two transactions).
        statement = "BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN"
        try:
            conn.connection.driver_connection.execute(statement)  # type: ignore[union-attr]
        except sqlite3.OperationalError as exc:  # busy past the timeout, disk I/O error
            raise OperationalError(statement, None, exc) from exc

    return engine


class _SqliteWriters:
    """One writer at a time on an SQLite file: this process's threads queue on a lock, and
    processes sharing the file (extra DIMSE processes) on an flock of a file beside it. Both
    hand over at once, where SQLite's busy handler sleeps with growing back-off."""

    def __init__(self, database: str | None) -> None:
        self._thread_lock = threading.Lock()
        self._file = open(f"{database}-writer.lock", "a+b") if database else None  # noqa: SIM115

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self._file is not None:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
            except BaseException:
                self._thread_lock.release()
                raise

    def __exit__(self, *_exc: object) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._thread_lock.release()


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, _SqliteWriters] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


def _writer_lock(engine: Engine) -> AbstractContextManager[object]:
    """The SQLite writer queue of `engine`; nothing on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _WRITERS_LOCK:
        writers = _SQLITE_WRITERS.get(engine)
        if writers is None:
            database = engine.url.database
            on_disk = database and database != ":memory:" and not database.startswith("file:")
            writers = _SqliteWriters(database if on_disk else None)
            _SQLITE_WRITERS[engine] = writers
    return writers


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
