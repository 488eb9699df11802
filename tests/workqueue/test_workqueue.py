"""The WorkQueue on SQLite and PostgreSQL: claim, leases, retries, study locks, admin verbs."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import alert, work_item
from hounsfield.errors import InvalidDataset
from hounsfield.workers.registry import register
from hounsfield.workers.runner import Worker
from hounsfield.workqueue import admin
from hounsfield.workqueue.items import Done, Kind, Later, Priority, Status, WorkItem, now
from hounsfield.workqueue.queue import Queue, enqueue

WRITER = Kind("test-writer", study_lock="write", max_retries=1, backoff_seconds=60)
READER = Kind("test-reader", study_lock="read")
RUNS: list[int] = []


@register(WRITER)
def _writer(_archive: Archive, item: WorkItem) -> Done:
    if item.payload.get("explode"):
        raise RuntimeError("boom")
    RUNS.append(item.pk)
    return Done("written")


@register(READER)
def _reader(_archive: Archive, item: WorkItem) -> Done | Later:
    if item.payload.get("later"):
        return Later(now() + timedelta(hours=1), "not yet", Status.IDLE)
    return Done("read")


def _add(archive: Archive, kind: str, **kw: object) -> int:
    with db.write(archive.engine) as conn:
        pk = enqueue(conn, kind, **kw)  # type: ignore[arg-type]
    assert pk is not None
    return pk


def test_priority_then_time_order(archive: Archive) -> None:
    low = _add(archive, "noop", priority=Priority.LOW)
    normal = _add(archive, "noop", priority=Priority.NORMAL)
    stat = _add(archive, "noop", priority=Priority.STAT)
    _add(archive, "noop", at=now() + timedelta(hours=1))
    q = Queue(archive.engine, "node-a")
    order = []
    while (item := q.claim()) is not None:
        order.append(item.pk)
        assert item.status == Status.IN_PROGRESS and item.node == "node-a"
        assert q.complete(item, "ok")
    assert order == [stat, normal, low]
    assert admin.counts(archive.engine) == {"completed": 3, "pending": 1}


def test_failure_backs_off_then_gives_up_with_alert(archive: Archive) -> None:
    pk = _add(archive, "test-writer", payload={"explode": True})
    q = Queue(archive.engine, "node-a")
    item = q.claim()
    assert item is not None and item.pk == pk
    assert q.fail(item, "boom") is Status.PENDING
    again = admin.get_item(archive.engine, pk)
    assert again.failure_count == 1 and again.scheduled_at > now() + timedelta(seconds=30)
    assert q.claim() is None  # backing off
    with db.write(archive.engine) as conn:
        conn.execute(work_item.update().values(scheduled_at=now()))
    item = q.claim()
    assert item is not None
    assert q.fail(item, "boom again") is Status.FAILED
    assert admin.get_item(archive.engine, pk).error == "boom again"
    with db.read(archive.engine) as conn:
        assert conn.scalar(select(func.count()).select_from(alert)) == 1
    retried = admin.retry(archive.engine, pk)
    assert retried.status == "pending" and retried.failure_count == 0


def test_expired_lease_is_reclaimed_and_the_old_holder_cannot_finish(archive: Archive) -> None:
    pk = _add(archive, "test-reader")
    dead = Queue(archive.engine, "dead-node", lease_seconds=0.001)
    held = dead.claim()
    assert held is not None
    alive = Queue(archive.engine, "alive-node")
    deadline = time.monotonic() + 30
    while (taken := alive.claim()) is None and time.monotonic() < deadline:
        time.sleep(0.01)  # the lease of the dead node runs out within milliseconds
    assert taken is not None
    assert taken.pk == pk and taken.node == "alive-node" and taken.failure_count == 1
    assert "dead-node" in taken.error
    assert not dead.complete(held)
    assert dead.renew([held]) == {pk}
    assert alive.complete(taken)
    assert admin.get_item(archive.engine, pk).status == "completed"


def test_study_lock_one_writer_many_readers(archive: Archive) -> None:
    key = "1/1.2.3"
    w1 = _add(archive, "test-writer", study_key=key)
    w2 = _add(archive, "test-writer", study_key=key)
    other = _add(archive, "test-writer", study_key="1/9.9")
    q = Queue(archive.engine, "n")
    first = q.claim()
    assert first is not None and first.pk == w1
    second = q.claim()
    assert second is not None and second.pk == other  # w2 waits for the study lock
    assert q.claim() is None
    q.complete(first)
    third = q.claim()
    assert third is not None and third.pk == w2
    q.complete(third)
    q.complete(second)

    r1 = _add(archive, "test-reader", study_key=key)
    r2 = _add(archive, "test-reader", study_key=key)
    w3 = _add(archive, "test-writer", study_key=key)
    readers = [q.claim(), q.claim()]
    assert {r.pk for r in readers if r} == {r1, r2}
    assert q.claim() is None  # the writer waits for both readers
    for r in readers:
        assert r is not None and q.complete(r)
    writer = q.claim()
    assert writer is not None and writer.pk == w3


def test_coalesce_key_keeps_one_waiting_item(archive: Archive) -> None:
    first = _add(archive, "test-reader", coalesce_key="study:1", status=Status.IDLE)
    with db.write(archive.engine) as conn:
        assert enqueue(conn, "test-reader", coalesce_key="study:1") is None
    q = Queue(archive.engine, "n")
    item = q.claim()
    assert item is not None and item.pk == first
    second = _add(archive, "test-reader", coalesce_key="study:1")  # first is running
    assert second != first
    # Postponing the running one while another waits completes it instead.
    assert q.postpone(item, now() + timedelta(hours=1))
    assert admin.get_item(archive.engine, first).status == "completed"


def test_reclaim_beyond_the_retry_limit_fails_the_item(archive: Archive) -> None:
    pk = _add(archive, "noop")  # no retries
    dead = Queue(archive.engine, "dead-node", lease_seconds=0.001)
    assert dead.claim() is not None
    deadline = time.monotonic() + 30
    while admin.get_item(archive.engine, pk).status != "failed" and time.monotonic() < deadline:
        assert Queue(archive.engine, "alive-node").claim() is None
    item = admin.get_item(archive.engine, pk)
    assert item.status == "failed" and "expired too often" in item.error


def test_admin_cancel_retry_and_purge(archive: Archive) -> None:
    pk = _add(archive, "noop")
    assert admin.cancel(archive.engine, pk).status == "cancelled"
    with pytest.raises(InvalidDataset):
        admin.cancel(archive.engine, pk)
    assert admin.retry(archive.engine, pk).status == "pending"
    assert [i.pk for i in admin.list_items(archive.engine, status="pending")] == [pk]
    assert Worker(archive, threads=1, processes=0).run_until_idle() == 1
    assert admin.purge_finished(archive.engine, now() - timedelta(hours=1)) == 0
    assert admin.purge_finished(archive.engine, now() + timedelta(seconds=1)) == 1
    assert admin.list_items(archive.engine) == []


def test_worker_threads_run_everything_once(archive: Archive) -> None:
    RUNS.clear()
    pks = {_add(archive, "test-writer", study_key=f"1/{n % 5}") for n in range(40)}
    bad = _add(archive, "test-writer", payload={"explode": True})
    later = _add(archive, "test-reader", payload={"later": True})
    worker = Worker(archive, threads=4, processes=0)
    assert worker.run_until_idle() == 42
    assert sorted(RUNS) == sorted(pks)
    items = {i.pk: i for i in admin.list_items(archive.engine, limit=100)}
    assert all(items[pk].status == "completed" and items[pk].result == "written" for pk in pks)
    assert items[bad].status == "pending" and "boom" in items[bad].error
    assert items[later].status == "idle" and items[later].result == "not yet"
