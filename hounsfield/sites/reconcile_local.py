"""This archive's side of a reconciliation: a partition's holdings, counted from the index."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from hounsfield.archive.context import Archive
from hounsfield.catalog.partitions import Partition
from hounsfield.db import engine as db
from hounsfield.db.tables import instance, series, study
from hounsfield.sites.reconcile_model import (
    IMAGE,
    SERIES,
    Difference,
    Instance,
    SeriesCount,
    StudyCount,
    dicom_date,
)


class LocalSide:
    """One partition's holdings, as the index counts them."""

    def __init__(self, archive: Archive, part: Partition) -> None:
        self.engine, self.part = archive.engine, part

    def studies(self, lo: date, hi: date) -> list[StudyCount]:
        """The studies dated from `lo` to `hi`."""
        stmt = select(study.c.study_iuid, study.c.study_date, study.c.num_instances).where(
            study.c.partition_pk == self.part.pk,
            study.c.study_date >= dicom_date(lo),
            study.c.study_date <= dicom_date(hi),
        )
        with db.read(self.engine) as conn:
            rows = conn.execute(stmt).all()
        return [StudyCount(str(uid), str(day), int(n)) for uid, day, n in rows]

    def study(self, uid: str) -> StudyCount | None:
        """The study with this UID, whatever its date."""
        stmt = select(study.c.study_date, study.c.num_instances).where(
            study.c.partition_pk == self.part.pk, study.c.study_iuid == uid
        )
        with db.read(self.engine) as conn:
            row = conn.execute(stmt).first()
        return None if row is None else StudyCount(uid, str(row[0]), int(row[1]))

    def series(self, study_uid: str) -> list[SeriesCount]:
        """The series of a study."""
        stmt = (
            select(series.c.series_iuid, series.c.num_instances)
            .join(study, study.c.pk == series.c.study_pk)
            .where(study.c.partition_pk == self.part.pk, study.c.study_iuid == study_uid)
        )
        with db.read(self.engine) as conn:
            rows = conn.execute(stmt).all()
        return [SeriesCount(str(uid), int(n)) for uid, n in rows]

    def instances(self, study_uid: str, series_uid: str) -> list[Instance]:
        """The instances of a series."""
        stmt = (
            select(instance.c.sop_iuid, instance.c.sop_cuid)
            .join(series, series.c.pk == instance.c.series_pk)
            .join(study, study.c.pk == series.c.study_pk)
            .where(
                study.c.partition_pk == self.part.pk,
                study.c.study_iuid == study_uid,
                series.c.series_iuid == series_uid,
            )
        )
        with db.read(self.engine) as conn:
            rows = conn.execute(stmt).all()
        return [Instance(str(uid), str(cuid)) for uid, cuid in rows]

    def held(self, wanted: Difference) -> int:
        """How many instances of the study, series or instance `wanted` names are indexed."""
        stmt = (
            select(func.count(instance.c.pk))
            .join(series, series.c.pk == instance.c.series_pk)
            .join(study, study.c.pk == series.c.study_pk)
            .where(study.c.partition_pk == self.part.pk, study.c.study_iuid == wanted.study)
        )
        if wanted.level in (SERIES, IMAGE):
            stmt = stmt.where(series.c.series_iuid == wanted.series)
        if wanted.level == IMAGE:
            stmt = stmt.where(instance.c.sop_iuid == wanted.instance)
        with db.read(self.engine) as conn:
            return int(conn.scalar(stmt) or 0)
