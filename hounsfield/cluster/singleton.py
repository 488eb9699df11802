"""Singletons: work that runs on exactly one live node, and moves when that node dies.

On PostgreSQL the holder keeps a session advisory lock on a connection of its own; the
server releases it the moment that connection ends (the node died, or lost the database),
and the next node that asks takes it. On SQLite (one box) an flock of a file beside the
database plays the same part between processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
import zlib
from typing import IO

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """The advisory-lock key of a singleton (stable across nodes and versions)."""
    return zlib.crc32(f"hounsfield:{name}".encode())


class Singleton:
    """Whether this process is the one that runs `name`: `held()` takes it when it is free
    and checks, each time, that it still holds it."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine, self.name = engine, name
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._file: IO[bytes] | None = None

    def held(self) -> bool:
        """True while this process holds the singleton (taking it now if it is free)."""
        with self._lock:
            if self.engine.dialect.name == "postgresql":
                return self._held_pg()
            return self._held_file()

    def _held_pg(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception as exc:  # the server or the link went away: so did the lock
                log.warning("singleton %s lost with its connection: %s", self.name, exc)
                self._drop()
        try:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except Exception:
            return False
        try:
            taken = conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key(self.name)}
            ).scalar()
        except Exception:
            conn.invalidate()
            conn.close()
            return False
        if not taken:
            conn.close()
            return False
        self._conn = conn
        log.info("this node now runs %s", self.name)
        return True

    def _held_file(self) -> bool:
        if self._file is not None:
            return True
        database = self.engine.url.database
        if not database or database == ":memory:":
            return True
        handle = open(f"{database}-{self.name}.lock", "a+b")  # noqa: SIM115
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None

    def release(self) -> None:
        """Give the singleton up (a clean stop)."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key(self.name)}
                    )
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
            if self._file is not None:
                self._file.close()
                self._file = None
