"""File rows of further copies of an object: its mirror copy beside the primary file."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, select

from hounsfield.db.tables import file
from hounsfield.db.upsert import get_or_insert


@dataclass(frozen=True)
class Copy:
    """One file row: where a copy of an instance is and what it holds."""

    pk: int
    instance_pk: int
    filesystem_pk: int
    path: str
    size: int
    transfer_syntax: str
    checksum: str


def copy_of(row: Mapping[Any, Any]) -> Copy:
    """A Copy from a file row mapping."""
    return Copy(
        int(row["pk"]),
        int(row["instance_pk"]),
        int(row["filesystem_pk"]),
        str(row["path"]),
        int(row["size"]),
        str(row["transfer_syntax"]),
        str(row["checksum"]),
    )


def add_copy(conn: Connection, like: Copy, filesystem_pk: int, path: str | None = None) -> int:
    """Record a copy of `like`'s file on another filesystem (same content); its file row pk.
    Idempotent: a row already there for that filesystem and path is kept."""
    pk, _new = get_or_insert(
        conn,
        file,
        {"filesystem_pk": filesystem_pk, "path": path or like.path},
        {
            "instance_pk": like.instance_pk,
            "size": like.size,
            "transfer_syntax": like.transfer_syntax,
            "checksum": like.checksum,
            "created_at": datetime.now(UTC),
        },
    )
    return pk


def copies_on(conn: Connection, instance_pks: Collection[int], filesystem_pk: int) -> list[Copy]:
    """The file rows of these instances on one filesystem."""
    if not instance_pks:
        return []
    rows = conn.execute(
        select(file).where(
            file.c.filesystem_pk == filesystem_pk, file.c.instance_pk.in_(list(instance_pks))
        )
    ).mappings()
    return [copy_of(row) for row in rows]


def drop_copies(conn: Connection, instance_pks: Collection[int], filesystem_pk: int) -> list[Copy]:
    """Remove the file rows of these instances on one filesystem; what they were."""
    gone = copies_on(conn, instance_pks, filesystem_pk)
    if gone:
        conn.execute(delete(file).where(file.c.pk.in_([c.pk for c in gone])))
    return gone
