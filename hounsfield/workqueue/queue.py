"""The queue's statements: enqueue, coalesce, claim under a lease, renew, complete, fail.

PostgreSQL claims with `SELECT … FOR UPDATE SKIP LOCKED` so concurrent claimers never wait on
each other, and serialises study-lock checks per study with a transaction advisory lock. SQLite
claims inside a `BEGIN IMMEDIATE` transaction, which already admits one writer at a time.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from hounsfield.alerts import raise_alert
from hounsfield.db import engine as db
from hounsfield.db.tables import WAITING_PREDICATE, work_item
from hounsfield.workqueue.items import WAITING, Kind, Priority, Status, WorkItem, now
from hounsfield.workqueue.kinds import kind_of

log = logging.getLogger(__name__)
CLAIM_BATCH = 16


def enqueue(
    conn: Connection,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    priority: Priority | None = None,
    at: datetime | None = None,
    study_key: str | None = None,
    coalesce_key: str | None = None,
    status: Status = Status.PENDING,
    max_retries: int | None = None,
) -> int | None:
    """Add an item in the caller's transaction; with `coalesce_key`, only if none is waiting.
    `max_retries` replaces the kind's retry limit for this item.

    Returns the new item's pk, or None when an idle / pending item with the same key exists.
    """
    spec = kind_of(kind)
    current = now()
    values = {
        "kind": kind,
        "priority": int(spec.priority if priority is None else priority),
        "status": status.value,
        "scheduled_at": at or current,
        "failure_count": 0,
        "max_retries": spec.max_retries if max_retries is None else max_retries,
        "study_key": study_key,
        "study_lock": spec.study_lock if study_key else None,
        "coalesce_key": coalesce_key,
        "payload": json.dumps(payload or {}, sort_keys=True),
        "result": "",
        "error": "",
        "created_at": current,
        "updated_at": current,
    }
    if coalesce_key is None:
        inserted = conn.execute(work_item.insert().values(**values)).inserted_primary_key
        return int(inserted[0])  # type: ignore[index]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(work_item)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=["coalesce_key"], index_where=text(WAITING_PREDICATE)
        )
        .returning(work_item.c.pk)
    )
    pk = conn.scalar(stmt)
    return int(pk) if pk is not None else None


def _ready(current: datetime, kinds: Collection[str] | None) -> Any:
    waiting = and_(work_item.c.status.in_(WAITING), work_item.c.scheduled_at <= current)
    expired = and_(
        work_item.c.status == Status.IN_PROGRESS.value, work_item.c.lease_expires_at < current
    )
    cond = or_(waiting, expired)
    if kinds is not None:
        cond = and_(cond, work_item.c.kind.in_(list(kinds)))
    return cond


def _study_busy(conn: Connection, row: Any, current: datetime) -> bool:
    """True when another live item holds a conflicting lock on the candidate's study."""
    key = row["study_key"]
    try_lock = select(func.pg_try_advisory_xact_lock(func.hashtext(key)))
    if conn.dialect.name == "postgresql" and not conn.scalar(try_lock):
        return True
    holders = and_(
        work_item.c.study_key == key,
        work_item.c.status == Status.IN_PROGRESS.value,
        work_item.c.lease_expires_at >= current,
        work_item.c.pk != row["pk"],
    )
    if row["study_lock"] != "write":
        holders = and_(holders, work_item.c.study_lock == "write")
    return conn.scalar(select(work_item.c.pk).where(holders).limit(1)) is not None


class Queue:
    """One node's handle on the shared queue."""

    def __init__(self, engine: Engine, node: str, lease_seconds: float = 60.0) -> None:
        self.engine = engine
        self.node = node[:64]
        self.lease = timedelta(seconds=lease_seconds)

    def claim(self, kinds: Collection[str] | None = None) -> WorkItem | None:
        """Take the most urgent ready item (or one whose lease expired) under a new lease."""
        if not self._anything_ready(kinds):
            return None
        expired_out: list[WorkItem] = []
        claimed: WorkItem | None = None
        with db.write(self.engine) as conn:
            current = now()
            stmt = (
                select(work_item)
                .where(_ready(current, kinds))
                .order_by(work_item.c.priority, work_item.c.scheduled_at, work_item.c.pk)
                .limit(CLAIM_BATCH)
            )
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            for row in conn.execute(stmt).mappings().all():
                reclaimed = row["status"] == Status.IN_PROGRESS.value
                failures = row["failure_count"] + (1 if reclaimed else 0)
                if reclaimed and failures > row["max_retries"]:
                    expired_out.append(self._give_up(conn, row, current))
                    continue
                if row["study_key"] and _study_busy(conn, row, current):
                    continue
                claimed = self._take(conn, row, current, failures, reclaimed)
                break
        for item in expired_out:
            raise_alert(
                self.engine,
                "error",
                "workqueue",
                f"{item.kind} #{item.pk}",
                f"gave up after {item.failure_count} failures: {item.error}",
            )
        return claimed

    def _anything_ready(self, kinds: Collection[str] | None) -> bool:
        """A read-only look first, so idle workers never queue for SQLite's write lock."""
        with db.read(self.engine) as conn:
            return (
                conn.scalar(select(work_item.c.pk).where(_ready(now(), kinds)).limit(1)) is not None
            )

    def _take(
        self, conn: Connection, row: Any, current: datetime, failures: int, reclaimed: bool
    ) -> WorkItem:
        token = uuid.uuid4().hex
        values: dict[str, Any] = {
            "status": Status.IN_PROGRESS.value,
            "node": self.node,
            "lease_token": token,
            "lease_expires_at": current + self.lease,
            "failure_count": failures,
            "updated_at": current,
        }
        if reclaimed:
            values["error"] = f"lease held by {row['node']} expired"
            log.warning("reclaiming %s #%d from %s", row["kind"], row["pk"], row["node"])
        conn.execute(update(work_item).where(work_item.c.pk == row["pk"]).values(**values))
        return WorkItem.from_row({**row, **values})

    def _give_up(self, conn: Connection, row: Any, current: datetime) -> WorkItem:
        values = {
            "status": Status.FAILED.value,
            "failure_count": row["failure_count"] + 1,
            "error": f"lease held by {row['node']} expired too often",
            "lease_token": None,
            "lease_expires_at": None,
            "updated_at": current,
        }
        conn.execute(update(work_item).where(work_item.c.pk == row["pk"]).values(**values))
        return WorkItem.from_row({**row, **values})

    def _mine(self, item: WorkItem) -> Any:
        return and_(
            work_item.c.pk == item.pk,
            work_item.c.lease_token == item.lease_token,
            work_item.c.status == Status.IN_PROGRESS.value,
        )

    def renew(self, items: Collection[WorkItem]) -> set[int]:
        """Extend the leases of `items`; the pks of those this node no longer holds."""
        if not items:
            return set()
        lost: set[int] = set()
        with db.write(self.engine) as conn:
            current = now()
            for item in items:
                changed = conn.execute(
                    update(work_item)
                    .where(self._mine(item))
                    .values(lease_expires_at=current + self.lease, updated_at=current)
                ).rowcount
                if not changed:
                    lost.add(item.pk)
        return lost

    def complete(self, item: WorkItem, result: str = "") -> bool:
        """Mark a held item completed; False if its lease was lost meanwhile."""
        with db.write(self.engine) as conn:
            current = now()
            return bool(
                conn.execute(
                    update(work_item)
                    .where(self._mine(item))
                    .values(
                        status=Status.COMPLETED.value,
                        result=result,
                        lease_token=None,
                        lease_expires_at=None,
                        completed_at=current,
                        updated_at=current,
                    )
                ).rowcount
            )

    def postpone(
        self, item: WorkItem, at: datetime, reason: str = "", status: Status = Status.PENDING
    ) -> bool:
        """Put a held item back to wait until `at`, without counting a failure.

        When another item with the same coalesce key is already waiting, that one will do the
        work, so this one is completed instead."""
        with db.write(self.engine) as conn:
            if item.coalesce_key and conn.scalar(
                select(work_item.c.pk).where(
                    work_item.c.coalesce_key == item.coalesce_key,
                    work_item.c.status.in_(WAITING),
                )
            ):
                status, at = Status.COMPLETED, now()
            return bool(
                conn.execute(
                    update(work_item)
                    .where(self._mine(item))
                    .values(
                        status=status.value,
                        scheduled_at=at,
                        result=reason,
                        lease_token=None,
                        lease_expires_at=None,
                        updated_at=now(),
                    )
                ).rowcount
            )

    def fail(
        self,
        item: WorkItem,
        error: str,
        spec: Kind | None = None,
        *,
        retry_in: float | None = None,
        final: bool = False,
    ) -> Status | None:
        """Record a failure: retry after `retry_in` seconds or the kind's back-off, or give up
        at the retry limit (or now, when `final`)."""
        spec = spec or kind_of(item.kind)
        failures = item.failure_count + 1
        give_up = final or failures > item.max_retries
        delay = spec.backoff(failures) if retry_in is None else retry_in
        status = Status.FAILED if give_up else Status.PENDING
        current = now()
        with db.write(self.engine) as conn:
            changed = conn.execute(
                update(work_item)
                .where(self._mine(item))
                .values(
                    status=status.value,
                    failure_count=failures,
                    error=error[:4000],
                    scheduled_at=current + timedelta(seconds=delay),
                    lease_token=None,
                    lease_expires_at=None,
                    updated_at=current,
                )
            ).rowcount
        if not changed:
            return None
        if give_up:
            raise_alert(
                self.engine,
                "error",
                "workqueue",
                f"{item.kind} #{item.pk}",
                f"failed {failures} times, giving up: {error}",
            )
        else:
            log.warning("%s #%d failed (%d), will retry: %s", item.kind, item.pk, failures, error)
        return status


def given_up(conn: Connection, kind: str) -> set[str]:
    """Coalesce keys of `kind`'s items at their retry limit: a service that queues that kind
    leaves them to the operator (`hounsfield queue retry`) instead of queueing them again."""
    return {
        str(key)
        for key in conn.scalars(
            select(work_item.c.coalesce_key).where(
                work_item.c.kind == kind, work_item.c.status == Status.FAILED.value
            )
        )
    }


def complete_waiting(conn: Connection, pk: int, result: str = "") -> bool:
    """Mark an item that nobody has claimed yet as done (its work was done another way);
    False when a worker already holds it or it is gone."""
    current = now()
    changed = conn.execute(
        update(work_item)
        .where(work_item.c.pk == pk, work_item.c.status.in_(WAITING))
        .values(
            status=Status.COMPLETED.value, result=result, updated_at=current, completed_at=current
        )
    ).rowcount
    return bool(changed)


def hurry(conn: Connection, pk: int) -> bool:
    """Make a waiting item due now (its work could not be done another way after all)."""
    changed = conn.execute(
        update(work_item)
        .where(work_item.c.pk == pk, work_item.c.status.in_(WAITING))
        .values(scheduled_at=now(), updated_at=now())
    ).rowcount
    return bool(changed)
