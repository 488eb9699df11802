"""Readiness of the node: can it reach its database and write to its storage, is it draining."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import text

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.errors import ArchiveError


@dataclass(frozen=True)
class Health:
    """What /health reports."""

    database: str
    storage: str
    draining: bool = False

    @property
    def ok(self) -> bool:
        """True when the node should get traffic: it can take new objects, not draining."""
        return self.database == "ok" and self.storage == "ok" and not self.draining

    def as_dict(self) -> dict[str, str | bool]:
        """The JSON body."""
        return {
            "status": "ok" if self.ok else "draining" if self.draining else "unavailable",
            "database": self.database,
            "storage": self.storage,
            "draining": self.draining,
        }


def health(archive: Archive, *, draining: bool = False) -> Health:
    """Probe the database with a trivial query and the storage with a room check; a
    draining node reports itself unavailable so load balancers send it nothing new."""
    try:
        with db.read(archive.engine) as conn:
            conn.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:
        database = f"unavailable: {str(exc).splitlines()[0][:200]}"
    try:
        fs = archive.filesystems.for_write(0)
        storage = "ok" if os.access(fs.path, os.W_OK) else f"not writable: {fs.path}"
    except ArchiveError as exc:
        storage = exc.message
    except Exception as exc:
        storage = f"unavailable: {exc}"
    return Health(database=database, storage=storage, draining=draining)
