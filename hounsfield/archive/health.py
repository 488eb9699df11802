"""Readiness of the node: can it reach its database and write to its storage."""

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

    @property
    def ok(self) -> bool:
        """True when the node can take new objects."""
        return self.database == "ok" and self.storage == "ok"

    def as_dict(self) -> dict[str, str]:
        """The JSON body."""
        return {
            "status": "ok" if self.ok else "unavailable",
            "database": self.database,
            "storage": self.storage,
        }


def health(archive: Archive) -> Health:
    """Probe the database with a trivial query and the storage with a room check."""
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
    return Health(database=database, storage=storage)
