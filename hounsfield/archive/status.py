"""Counts of what the archive holds and how full its filesystems are."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from sqlalchemy import func, select

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, instance, patient, series, study
from hounsfield.storage.tiers import list_filesystems


@dataclass(frozen=True)
class FilesystemUsage:
    """One filesystem's usage."""

    path: str
    tier: int
    stored_bytes: int
    free_bytes: int | None
    capacity_bytes: int | None
    used_percent: float | None = None  # of the capacity, or of the disk without one
    low_watermark: int = 80
    high_watermark: int = 90


@dataclass(frozen=True)
class Status:
    """What `hounsfield status` prints."""

    patients: int
    studies: int
    series: int
    instances: int
    stored_bytes: int
    filesystems: list[FilesystemUsage]


def status(archive: Archive) -> Status:
    """Count the index and measure each filesystem."""
    with db.read(archive.engine) as conn:
        counts = [
            conn.scalar(select(func.count()).select_from(t)) or 0
            for t in (patient, study, series, instance)
        ]
        used = dict(
            conn.execute(
                select(file.c.filesystem_pk, func.sum(file.c.size)).group_by(file.c.filesystem_pk)
            ).all()
        )
        rows = conn.execute(select(filesystem).order_by(filesystem.c.pk)).mappings().all()
    percents = {u.pk: u.percent for u in list_filesystems(archive.engine)}
    usages = []
    for row in rows:
        try:
            free: int | None = shutil.disk_usage(row["path"]).free
        except OSError:
            free = None
        usages.append(
            FilesystemUsage(
                row["path"],
                row["tier"],
                int(used.get(row["pk"], 0) or 0),
                free,
                row["capacity_bytes"],
                percents.get(row["pk"]),
                row["low_watermark"],
                row["high_watermark"],
            )
        )
    patients, studies, series_count, instances = counts
    return Status(
        patients,
        studies,
        series_count,
        instances,
        stored_bytes=sum(u.stored_bytes for u in usages),
        filesystems=usages,
    )
