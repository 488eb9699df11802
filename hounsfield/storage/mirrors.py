"""Mirror filesystems as the lifecycle work sees them: which filesystem mirrors which."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, select

from hounsfield.db.tables import filesystem


@dataclass(frozen=True)
class Mirror:
    """The mirror of one filesystem."""

    pk: int
    root: Path
    mode: str  # "sync" or "async"
    active: bool  # enabled and writable: copies go there


def mirrors(conn: Connection) -> dict[int, Mirror]:
    """Every mirror, by the pk of the filesystem it mirrors."""
    rows = conn.execute(
        select(
            filesystem.c.pk,
            filesystem.c.path,
            filesystem.c.mirror_of_pk,
            filesystem.c.mirror_mode,
            filesystem.c.enabled,
            filesystem.c.read_only,
        ).where(filesystem.c.mirror_of_pk.is_not(None))
    ).all()
    return {
        int(of): Mirror(int(pk), Path(path), mode or "sync", bool(enabled and not read_only))
        for pk, path, of, mode, enabled, read_only in rows
    }


def mirror_pks(conn: Connection) -> set[int]:
    """The pks of every mirror filesystem."""
    return {m.pk for m in mirrors(conn).values()}
