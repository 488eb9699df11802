"""The no-op item: checks a queue end to end and measures its throughput."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hounsfield.workqueue.items import Done, Kind, Priority, WorkItem
from hounsfield.workqueue.processors import register

if TYPE_CHECKING:
    from hounsfield.archive.context import Archive

NOOP = Kind("noop", priority=Priority.LOW, max_retries=0)


@register(NOOP)
def process_noop(_archive: Archive, item: WorkItem) -> Done:
    """Do nothing and report which node did it."""
    return Done(f"noop #{item.pk}")
