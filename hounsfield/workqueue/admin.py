"""Operator verbs on the queue: list, show, retry, cancel, purge finished items, a study's items."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import Engine, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from hounsfield.db import engine as db
from hounsfield.db.tables import work_item
from hounsfield.errors import InvalidDataset, NotFound
from hounsfield.workqueue.items import WAITING, Status, WorkItem, now, study_key


def list_items(
    engine: Engine,
    *,
    status: str | None = None,
    kind: str | None = None,
    limit: int = 100,
) -> list[WorkItem]:
    """Items, most urgent and oldest first, optionally of one status or kind."""
    stmt = select(work_item).order_by(
        work_item.c.priority, work_item.c.scheduled_at, work_item.c.pk
    )
    if status:
        stmt = stmt.where(work_item.c.status == Status(status).value)
    if kind:
        stmt = stmt.where(work_item.c.kind == kind)
    with db.read(engine) as conn:
        rows = conn.execute(stmt.limit(limit)).mappings().all()
    return [WorkItem.from_row(r) for r in rows]


def counts(engine: Engine) -> Counter[str]:
    """How many items are in each status."""
    with db.read(engine) as conn:
        rows = conn.execute(
            select(work_item.c.status, func.count()).group_by(work_item.c.status)
        ).all()
    return Counter({status: int(n) for status, n in rows})


def get_item(engine: Engine, pk: int) -> WorkItem:
    """One item, or NotFound."""
    with db.read(engine) as conn:
        row = conn.execute(select(work_item).where(work_item.c.pk == pk)).mappings().first()
    if row is None:
        raise NotFound(f"no work item {pk}")
    return WorkItem.from_row(row)


def retry(engine: Engine, pk: int) -> WorkItem:
    """Run a failed or cancelled item again now, with its failure count reset."""
    item = get_item(engine, pk)
    if item.status not in (Status.FAILED.value, Status.CANCELLED.value):
        raise InvalidDataset(f"work item {pk} is {item.status}; only failed or cancelled retry")
    try:
        with db.write(engine) as conn:
            conn.execute(
                update(work_item)
                .where(work_item.c.pk == pk, work_item.c.status == item.status)
                .values(
                    status=Status.PENDING.value,
                    failure_count=0,
                    scheduled_at=now(),
                    updated_at=now(),
                )
            )
    except IntegrityError as exc:
        raise InvalidDataset(f"another waiting item already does the work of {pk}") from exc
    return get_item(engine, pk)


def cancel(engine: Engine, pk: int) -> WorkItem:
    """Cancel an item that has not finished; a running one loses its lease."""
    item = get_item(engine, pk)
    active = (*WAITING, Status.IN_PROGRESS.value, Status.FAILED.value)
    if item.status not in active:
        raise InvalidDataset(f"work item {pk} is {item.status} and cannot be cancelled")
    with db.write(engine) as conn:
        conn.execute(
            update(work_item)
            .where(work_item.c.pk == pk, work_item.c.status.in_(active))
            .values(
                status=Status.CANCELLED.value,
                lease_token=None,
                lease_expires_at=None,
                updated_at=now(),
            )
        )
    return get_item(engine, pk)


def purge_finished(engine: Engine, before: datetime) -> int:
    """Remove completed and cancelled items that finished before `before`."""
    with db.write(engine) as conn:
        return conn.execute(
            delete(work_item).where(
                work_item.c.status.in_((Status.COMPLETED.value, Status.CANCELLED.value)),
                work_item.c.updated_at < before,
            )
        ).rowcount


def study_items(
    engine: Engine, partition_pk: int, study_uid: str, limit: int = 50
) -> list[WorkItem]:
    """The work items about one study, newest first: those under its study lock, its
    processing and routing, and its forwards."""
    key = study_key(partition_pk, study_uid)
    stmt = (
        select(work_item)
        .where(
            or_(
                work_item.c.study_key == key,
                work_item.c.coalesce_key.endswith(f":{key}"),
                work_item.c.coalesce_key.startswith(f"forward:{partition_pk}:{study_uid}:"),
            )
        )
        .order_by(work_item.c.pk.desc())
        .limit(limit)
    )
    with db.read(engine) as conn:
        rows = conn.execute(stmt).mappings().all()
    return [WorkItem.from_row(r) for r in rows]
