"""Delete a study, a series or an instance: rows in one transaction, then the files."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select

from hounsfield.archive.context import Archive
from hounsfield.archive.metadata import invalidate
from hounsfield.audit.trail import flush as flush_audit
from hounsfield.audit.trail import record
from hounsfield.catalog.partitions import Partition
from hounsfield.catalog.unindex import remove_instance_rows
from hounsfield.db import engine as db
from hounsfield.db.tables import filesystem, instance, patient, series, study
from hounsfield.errors import NotFound
from hounsfield.storage.atomic import remove_quietly
from hounsfield.uids import check_uid

log = logging.getLogger(__name__)


def remove(
    archive: Archive,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    *,
    partition: Partition | str | None = None,
) -> int:
    """Remove every instance under the given UIDs; returns how many. NotFound when none match.

    The rows go in one transaction, so a reader sees all of them or none; the files are
    unlinked after the commit (a crash in between leaves files that reinventory reports)."""
    check_uid(study_uid, "StudyInstanceUID")
    conds = [study.c.study_iuid == study_uid]
    if series_uid is not None:
        conds.append(series.c.series_iuid == check_uid(series_uid, "SeriesInstanceUID"))
    if sop_uid is not None:
        conds.append(instance.c.sop_iuid == check_uid(sop_uid, "SOPInstanceUID"))
    part = archive.resolve(partition)
    title, partition_pk = part.ae_title, part.pk
    # Held audit records that name only a study get their patient from the index when
    # written: write them while the study is still there.
    flush_audit(archive.engine)
    with db.write(archive.engine) as conn:
        pks = list(
            conn.scalars(
                select(instance.c.pk)
                .join(series, series.c.pk == instance.c.series_pk)
                .join(study, study.c.pk == series.c.study_pk)
                .where(study.c.partition_pk == partition_pk, *conds)
                .order_by(instance.c.pk)
            )
        )
        if not pks:
            raise NotFound(
                f"nothing stored under {'/'.join(u for u in (study_uid, series_uid, sop_uid) if u)}"
            )
        who = conn.execute(
            select(patient.c.patient_id, patient.c.patient_name)
            .join(study, study.c.patient_pk == patient.c.pk)
            .where(study.c.partition_pk == partition_pk, study.c.study_iuid == study_uid)
        ).first()
        removed = [f for pk in pks for f in remove_instance_rows(conn, pk)]
        fs_pks = dict(conn.execute(select(filesystem.c.path, filesystem.c.pk)).all())
    invalidate(archive, title, study_uid)
    for old in removed:
        remove_quietly(Path(old.filesystem_path) / old.path)
        if old.filesystem_path in fs_pks:
            archive.filesystems.account(fs_pks[old.filesystem_path], -old.size)
    what = "study" if series_uid is None else "series" if sop_uid is None else "instance"
    record(
        archive.engine,
        "delete",
        partition=title,
        study_uid=study_uid,
        count=len(pks),
        patient_id=who[0] if who else "",
        patient_name=who[1] if who else "",
        detail=f"{what} {sop_uid or series_uid or study_uid}",
    )
    log.info("removed %d instances under %s", len(pks), study_uid)
    return len(pks)
