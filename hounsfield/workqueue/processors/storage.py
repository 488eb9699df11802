"""Storage work items: migrate a study to a lower tier, copy it to an archive tier, delete it,
purge its online copy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from hounsfield.archive.archive_copy import copy_to_tier
from hounsfield.archive.migrate_tier import migrate_study, purge_study
from hounsfield.archive.remove import remove
from hounsfield.db import engine as db
from hounsfield.db.tables import partition, study
from hounsfield.errors import NotFound
from hounsfield.workqueue.items import Done, Kind, Priority, WorkItem
from hounsfield.workqueue.processors import register

if TYPE_CHECKING:
    from hounsfield.archive.context import Archive

MIGRATE = Kind(
    "migrate-study", Priority.HIGH, max_retries=5, backoff_seconds=60, study_lock="write"
)
DELETE = Kind("delete-study", Priority.HIGH, max_retries=5, backoff_seconds=60, study_lock="write")
COPY = Kind("copy-study", Priority.NORMAL, max_retries=5, backoff_seconds=300, study_lock="write")
PURGE = Kind("purge-study", Priority.HIGH, max_retries=5, backoff_seconds=60, study_lock="write")


@register(MIGRATE)
def process_migrate(archive: Archive, item: WorkItem) -> Done:
    """Move the study's files off `filesystem` to `target` or the next tier with room."""
    p = item.payload
    moved = migrate_study(archive, p["study_pk"], p["filesystem"], p.get("target"))
    return Done(f"moved {moved.files} files, {moved.bytes} bytes to {moved.target or '-'}")


@register(COPY)
def process_copy(archive: Archive, item: WorkItem) -> Done:
    """Put a verified copy of the study on a filesystem of `tier` (already there: nothing)."""
    copied = copy_to_tier(archive, item.payload["study_pk"], item.payload.get("tier"))
    if not copied.files:
        return Done("nothing to copy: the tier already holds every instance")
    return Done(f"copied {copied.files} files, {copied.bytes} bytes to {copied.target}")


@register(DELETE)
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


@register(PURGE)
def process_purge(archive: Archive, item: WorkItem) -> Done:
    """Remove the study's copies on `filesystem` that exist, verified, elsewhere."""
    freed = purge_study(archive, item.payload["study_pk"], item.payload["filesystem"])
    return Done(f"freed {freed} bytes")
