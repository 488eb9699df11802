"""Remove instances from the index, keeping the per-level counts right."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, select, update

from hounsfield.db.tables import file, filesystem, instance, patient, series, study


@dataclass(frozen=True)
class RemovedFile:
    """A file whose row is gone and that may now be unlinked."""

    filesystem_pk: int
    filesystem_path: str
    path: str
    size: int


def remove_instance_rows(conn: Connection, instance_pk: int) -> list[RemovedFile]:
    """Delete one instance and its file rows; drop the series, study and patient left empty.

    The instance row is locked first (PostgreSQL), so a copy being recorded for it meanwhile
    (an asynchronous mirror's) is either seen here and removed, or refused."""
    conn.execute(select(instance.c.pk).where(instance.c.pk == instance_pk).with_for_update())
    files = conn.execute(
        select(filesystem.c.pk, filesystem.c.path, file.c.path, file.c.size)
        .join(filesystem, filesystem.c.pk == file.c.filesystem_pk)
        .where(file.c.instance_pk == instance_pk)
    ).all()
    size = max((row[3] for row in files), default=0)  # copies on other tiers are not counted
    series_pk = conn.scalar(select(instance.c.series_pk).where(instance.c.pk == instance_pk))
    study_pk: int = conn.scalar(select(series.c.study_pk).where(series.c.pk == series_pk))  # type: ignore[assignment]
    conn.execute(delete(file).where(file.c.instance_pk == instance_pk))
    conn.execute(delete(instance).where(instance.c.pk == instance_pk))
    conn.execute(
        update(series)
        .where(series.c.pk == series_pk)
        .values(num_instances=series.c.num_instances - 1)
    )
    conn.execute(
        update(study)
        .where(study.c.pk == study_pk)
        .values(num_instances=study.c.num_instances - 1, size_bytes=study.c.size_bytes - size)
    )
    left_in_series = conn.scalar(select(series.c.num_instances).where(series.c.pk == series_pk))
    if (left_in_series or 0) <= 0:
        conn.execute(delete(series).where(series.c.pk == series_pk))
        conn.execute(
            update(study).where(study.c.pk == study_pk).values(num_series=study.c.num_series - 1)
        )
        refresh_modalities(conn, study_pk)
    left_in_study = conn.scalar(select(study.c.num_instances).where(study.c.pk == study_pk))
    if (left_in_study or 0) <= 0:
        patient_pk = conn.scalar(select(study.c.patient_pk).where(study.c.pk == study_pk))
        conn.execute(delete(study).where(study.c.pk == study_pk))
        conn.execute(
            update(patient)
            .where(patient.c.pk == patient_pk)
            .values(num_studies=patient.c.num_studies - 1)
        )
        conn.execute(delete(patient).where(patient.c.pk == patient_pk, patient.c.num_studies <= 0))
    return [RemovedFile(r[0], r[1], r[2], r[3]) for r in files]


def refresh_modalities(conn: Connection, study_pk: int) -> None:
    """Recompute a study's Modalities in Study from its series."""
    values = conn.scalars(
        select(series.c.modality)
        .where(series.c.study_pk == study_pk, series.c.modality != "")
        .group_by(series.c.modality)
        .order_by(func.min(series.c.pk))
    ).all()
    conn.execute(update(study).where(study.c.pk == study_pk).values(modalities="\\".join(values)))
