"""Storage work items: migrate a study to a lower tier, copy it to an archive tier, delete it,
purge its online copy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from hounsfield.archive.delete import remove
from hounsfield.db import engine as db
from hounsfield.db.tables import partition, study
from hounsfield.errors import NotFound
from hounsfield.lifecycle.archive_copy import copy_to_tier
from hounsfield.lifecycle.migrate import migrate_study, purge_study
from hounsfield.workers.registry import register
from hounsfield.workqueue.items import Done, WorkItem
from hounsfield.workqueue.kinds import COPY_STUDY, DELETE_STUDY, MIGRATE_STUDY, PURGE_STUDY

if TYPE_CHECKING:
    from hounsfield.archive.context import Archive


@register(MIGRATE_STUDY)
def process_migrate(archive: Archive, item: WorkItem) -> Done:
    """Move the study's files off `filesystem` to `target` or the next tier with room."""
    p = item.payload
    moved = migrate_study(archive, p["study_pk"], p["filesystem"], p.get("target"))
    return Done(f"moved {moved.files} files, {moved.bytes} bytes to {moved.target or '-'}")


@register(COPY_STUDY)
def process_copy(archive: Archive, item: WorkItem) -> Done:
    """Put a verified copy of the study on a filesystem of `tier` (already there: nothing)."""
    copied = copy_to_tier(archive, item.payload["study_pk"], item.payload.get("tier"))
    if not copied.files:
        return Done("nothing to copy: the tier already holds every instance")
    return Done(f"copied {copied.files} files, {copied.bytes} bytes to {copied.target}")


@register(DELETE_STUDY)
def process_delete(archive: Archive, item: WorkItem) -> Done:
    """Delete the study from the archive (already gone counts as done)."""
    with db.read(archive.engine) as conn:
        row = conn.execute(
            select(study.c.study_iuid, partition.c.ae_title)
            .join(partition, partition.c.pk == study.c.partition_pk)
            .where(study.c.pk == item.payload["study_pk"])
        ).first()
    if row is None:
        return Done("study already gone")
    try:
        count = remove(archive, row[0], partition=row[1])
    except NotFound:
        return Done("study already gone")
    return Done(f"deleted {count} instances")


@register(PURGE_STUDY)
def process_purge(archive: Archive, item: WorkItem) -> Done:
    """Remove the study's copies on `filesystem` that exist, verified, elsewhere."""
    freed = purge_study(archive, item.payload["study_pk"], item.payload["filesystem"])
    return Done(f"freed {freed} bytes")
