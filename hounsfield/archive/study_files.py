"""Where a study's objects lie: each file with its filesystem, tier and encoding."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from hounsfield.archive.context import Archive
from hounsfield.catalog.partitions import Partition
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, instance, series, study
from hounsfield.errors import NotFound
from hounsfield.uids import check_uid
from hounsfield.workqueue.items import utc


@dataclass(frozen=True)
class StoredFile:
    """One copy of an instance: which filesystem and tier hold it, and how it is encoded."""

    series_uid: str
    sop_uid: str
    instance_number: str
    filesystem_pk: int
    filesystem: str
    tier: int
    mirror: bool
    path: str
    size: int
    transfer_syntax: str
    verified_at: datetime | None


def study_pk(archive: Archive, part: Partition, uid: str) -> int:
    """The index key of a study of a partition, or NotFound."""
    check_uid(uid, "StudyInstanceUID")
    with db.read(archive.engine) as conn:
        pk = conn.scalar(
            select(study.c.pk).where(study.c.partition_pk == part.pk, study.c.study_iuid == uid)
        )
    if pk is None:
        raise NotFound(f"no study {uid} in partition {part.ae_title}")
    return int(pk)


def study_files(archive: Archive, pk: int) -> list[StoredFile]:
    """Every file of a study, by series, instance and tier."""
    stmt = (
        select(
            series.c.series_iuid,
            instance.c.sop_iuid,
            instance.c.instance_number,
            filesystem.c.pk,
            filesystem.c.path,
            filesystem.c.tier,
            filesystem.c.mirror_of_pk,
            file.c.path,
            file.c.size,
            file.c.transfer_syntax,
            file.c.verified_at,
        )
        .select_from(file)
        .join(instance, instance.c.pk == file.c.instance_pk)
        .join(series, series.c.pk == instance.c.series_pk)
        .join(filesystem, filesystem.c.pk == file.c.filesystem_pk)
        .where(series.c.study_pk == pk)
        .order_by(series.c.pk, instance.c.pk, filesystem.c.tier, file.c.pk)
    )
    with db.read(archive.engine) as conn:
        rows = conn.execute(stmt).all()
    return [
        StoredFile(
            r[0], r[1], r[2], int(r[3]), r[4], r[5], r[6] is not None, r[7], r[8], r[9], utc(r[10])
        )
        for r in rows
    ]
