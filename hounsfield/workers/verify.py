"""The verify-files item: verify, and repair, one range of a filesystem's files."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hounsfield.lifecycle.verify import verify_range
from hounsfield.workers.registry import register
from hounsfield.workqueue.items import Done, WorkItem
from hounsfield.workqueue.kinds import VERIFY_FILES

if TYPE_CHECKING:
    from hounsfield.archive.context import Archive


@register(VERIFY_FILES)
def process_verify(archive: Archive, item: WorkItem) -> Done:
    """Re-read the files of the range, check size and checksum, repair and alert."""
    p = item.payload
    report = verify_range(archive, int(p["filesystem"]), int(p["after"]), int(p["through"]))
    return Done(str(report))
