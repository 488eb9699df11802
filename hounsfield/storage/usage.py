"""Filesystem usage counters: kept by triggers in the index's transactions, read and checked here.

Every insert, delete or size change of a `file` row adds its delta to `filesystem_usage`
in the same transaction (migration 0008), so the sum of a filesystem's rows is exactly the
bytes its indexed files hold, on every node at once. `recount` checks that against the file
table and corrects any difference (a change made behind the triggers' back)."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, func, insert, select, text

from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem_usage


def used_bytes(conn: Connection) -> dict[int, int]:
    """The bytes held by each filesystem's indexed files."""
    rows = conn.execute(
        select(filesystem_usage.c.filesystem_pk, func.sum(filesystem_usage.c.bytes)).group_by(
            filesystem_usage.c.filesystem_pk
        )
    ).all()
    return {int(pk): int(total or 0) for pk, total in rows}


def recount(engine: Engine) -> dict[int, int]:
    """Count every filesystem's bytes from the file table and make the counters say so;
    returns the differences found (counted minus counter) by filesystem, empty when exact.

    The counters are locked first, so a store that commits meanwhile waits and then adds
    its delta on top of the recounted value."""
    with db.write(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE filesystem_usage IN EXCLUSIVE MODE"))
        counters = used_bytes(conn)
        counted = {
            int(pk): int(total or 0)
            for pk, total in conn.execute(
                select(file.c.filesystem_pk, func.sum(file.c.size)).group_by(file.c.filesystem_pk)
            ).all()
        }
        drift = {
            pk: counted.get(pk, 0) - counters.get(pk, 0)
            for pk in counters.keys() | counted.keys()
            if counted.get(pk, 0) != counters.get(pk, 0)
        }
        if drift:
            conn.execute(
                filesystem_usage.delete().where(filesystem_usage.c.filesystem_pk.in_(list(drift)))
            )
            conn.execute(
                insert(filesystem_usage),
                [{"filesystem_pk": pk, "shard": 0, "bytes": counted.get(pk, 0)} for pk in drift],
            )
    return drift
