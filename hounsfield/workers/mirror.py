"""The mirror-study item: copy a study's new files to their filesystem's asynchronous mirror."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hounsfield.lifecycle.mirror import mirror_study
from hounsfield.workers.registry import register
from hounsfield.workqueue.items import Done, WorkItem
from hounsfield.workqueue.kinds import MIRROR_STUDY

if TYPE_CHECKING:
    from hounsfield.archive.context import Archive


@register(MIRROR_STUDY)
def process_mirror(archive: Archive, item: WorkItem) -> Done:
    """Mirror every file of the study its mirror lacks (a study gone meanwhile: nothing)."""
    return Done(str(mirror_study(archive, int(item.payload["study_pk"]))))
