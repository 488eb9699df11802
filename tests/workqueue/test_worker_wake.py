"""The worker's wake-ups and its pause hook: work queued in-process starts at once, and a
worker told it may not claim takes nothing until told it may."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.workers.registry import register
from hounsfield.workers.runner import Worker
from hounsfield.workqueue import admin, wake
from hounsfield.workqueue.items import Done, Kind, WorkItem, now
from hounsfield.workqueue.queue import enqueue

SLOW = Kind("test-slow", max_retries=0)
RELEASE = threading.Event()


@register(SLOW)
def _slow(_archive: Archive, _item: WorkItem) -> Done:
    RELEASE.wait(10)
    return Done("slow")


def _add(archive: Archive, kind: str = "noop") -> int:
    with db.write(archive.engine) as conn:
        pk = enqueue(conn, kind)
    assert pk is not None
    return pk


def _status(archive: Archive, pk: int) -> str:
    return admin.get_item(archive.engine, pk).status


def _within(seconds: float, check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_ring_starts_work_before_the_next_poll(archive: Archive) -> None:
    worker = Worker(archive, threads=2, processes=0)
    worker.poll = 60.0
    worker.start()
    try:
        time.sleep(0.1)  # both threads found nothing and wait for their poll
        first, second = _add(archive), _add(archive)
        wake.ring()
        assert _within(5, lambda: _status(archive, second) == "completed")
        assert _status(archive, first) == "completed"
    finally:
        worker.stop(5)
    wake.ring()  # a stopped worker is no longer rung
    later = _add(archive)
    time.sleep(0.1)
    assert _status(archive, later) == "pending"


def test_a_paused_worker_claims_nothing_and_resumes(archive: Archive) -> None:
    allowed = threading.Event()
    allowed.set()
    said_no = threading.Event()

    def may_claim() -> bool:
        if allowed.is_set():
            return True
        said_no.set()
        return False

    RELEASE.clear()
    worker = Worker(archive, threads=2, processes=0, may_claim=may_claim)
    worker.poll = 0.05
    worker.queue.lease = timedelta(seconds=0.2)  # renewed while the item runs
    running = _add(archive, "test-slow")
    worker.start()
    try:
        assert _within(5, lambda: _status(archive, running) == "in_progress")
        allowed.clear()
        # the idle thread may have been told yes just before: once it has been told no,
        # any claim it had in flight is over
        assert said_no.wait(5)
        waiting = _add(archive)
        wake.ring()
        assert worker.run_one() is None
        time.sleep(0.5)  # many polls and lease lengths
        assert _status(archive, waiting) == "pending"
        held = admin.get_item(archive.engine, running)
        assert held.lease_expires_at is not None and held.lease_expires_at > now()  # renewed
        RELEASE.set()
        assert _within(5, lambda: _status(archive, running) == "completed")
        assert _status(archive, waiting) == "pending"
        allowed.set()
        assert _within(5, lambda: _status(archive, waiting) == "completed")
    finally:
        RELEASE.set()
        worker.stop(5)


def test_may_claim_failing_counts_as_no(archive: Archive) -> None:
    def broken() -> bool:
        raise OSError("storage not reachable")

    pk = _add(archive)
    assert Worker(archive, threads=1, processes=0, may_claim=broken).run_until_idle() == 0
    assert _status(archive, pk) == "pending"
