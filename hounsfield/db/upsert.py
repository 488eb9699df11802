"""Insert-if-absent that is race-free on PostgreSQL and SQLite alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, and_, select
from sqlalchemy.dialects import postgresql, sqlite


def get_or_insert(
    conn: Connection, table: Table, keys: dict[str, Any], values: dict[str, Any]
) -> tuple[int, bool]:
    """The pk of the row matching `keys`, inserting `keys | values` if absent; and if it was new."""
    where = and_(*(table.c[k] == v for k, v in keys.items()))
    pk = conn.scalar(select(table.c.pk).where(where))
    if pk is not None:
        return int(pk), False
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(table)
        .values(**keys, **values)
        .on_conflict_do_nothing(index_elements=list(keys))
        .returning(table.c.pk)
    )
    pk = conn.scalar(stmt)
    if pk is not None:
        return int(pk), True
    return int(conn.scalar(select(table.c.pk).where(where))), False  # type: ignore[arg-type]
