"""The no-op item: checks a queue end to end and measures its throughput."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hounsfield.workers.registry import register
from hounsfield.workqueue.items import Done, WorkItem
from hounsfield.workqueue.kinds import NOOP

if TYPE_CHECKING:
    from hounsfield.archive.context import Archive


@register(NOOP)
def process_noop(_archive: Archive, item: WorkItem) -> Done:
    """Do nothing and report which node did it."""
    return Done(f"noop #{item.pk}")
