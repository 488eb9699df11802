"""Mirror back-fill: queue a `mirror-study` item for each study with a file that its
filesystem's mirror holds no copy of (stored before the mirror was added, or while it was
disabled or read-only)."""

from __future__ import annotations

from sqlalchemy import Connection, select
from sqlalchemy.orm import aliased

from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, instance, series, study
from hounsfield.scheduled.registry import Run, service
from hounsfield.workqueue.items import Priority, study_key
from hounsfield.workqueue.kinds import MIRROR_STUDY
from hounsfield.workqueue.queue import enqueue, given_up

BATCH = 500  # studies queued per run at most; the next run takes the next ones


def unmirrored(conn: Connection, limit: int = BATCH) -> list[tuple[int, int, str]]:
    """Studies with a file on a filesystem whose active mirror (enabled, writable) has no
    copy of that file's instance: pk, partition and Study Instance UID, by pk."""
    mirror, held = aliased(filesystem), aliased(file)
    copied = (
        select(held.c.pk)
        .where(held.c.instance_pk == file.c.instance_pk, held.c.filesystem_pk == mirror.c.pk)
        .exists()
    )
    rows = conn.execute(
        select(study.c.pk, study.c.partition_pk, study.c.study_iuid)
        .select_from(file)
        .join(mirror, mirror.c.mirror_of_pk == file.c.filesystem_pk)
        .join(instance, instance.c.pk == file.c.instance_pk)
        .join(series, series.c.pk == instance.c.series_pk)
        .join(study, study.c.pk == series.c.study_pk)
        .where(mirror.c.enabled.is_(True), mirror.c.read_only.is_(False), ~copied)
        .group_by(study.c.pk, study.c.partition_pk, study.c.study_iuid)
        .order_by(study.c.pk)
        .limit(limit)
    ).all()
    return [(int(pk), int(part), str(uid)) for pk, part, uid in rows]


@service("mirror-backfill", interval_seconds=3600)
def mirror_backfill(run: Run) -> str:
    """Queue the mirroring of every study that has a file its filesystem's mirror lacks: files
    stored before the mirror was added, or while it was disabled or read-only."""
    queued = skipped = 0
    with db.write(run.archive.engine) as conn:
        left = given_up(conn, MIRROR_STUDY.name)
        for pk, partition_pk, uid in unmirrored(conn):
            key = f"{MIRROR_STUDY.name}:{pk}"
            if key in left:
                skipped += 1
                continue
            made = enqueue(
                conn,
                MIRROR_STUDY.name,
                {"study_pk": pk},
                priority=Priority.LOW,  # catching up: after the stores' own mirror copies
                study_key=study_key(partition_pk, uid),
                coalesce_key=key,
            )
            queued += made is not None
    done = f"studies queued for their mirror: {queued}"
    return done + (f", {skipped} left at their retry limit" if skipped else "")
