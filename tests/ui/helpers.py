"""Test data for the admin pages, made through the archive's own functions."""

from __future__ import annotations

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.workqueue.queue import Queue, enqueue


def failed_item(archive: Archive, error: str = "peer refused") -> int:
    """A work item that failed for good, the way a worker records it; its pk."""
    with db.write(archive.engine) as conn:
        pk = enqueue(conn, "noop", {"why": "test"})
    queue = Queue(archive.engine, "elsewhere")
    item = queue.claim(["noop"])
    assert item is not None and item.pk == pk
    queue.fail(item, error, final=True)
    return int(pk)  # type: ignore[arg-type]
