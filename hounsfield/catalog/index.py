"""Index rows for one stored object: patient, study, series, instance and file.

The statements are built once; the rows of the study and series an object belongs to are
usually cached (ParentCache), so a typical object costs one insert of each of its own rows
and two counter updates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import Connection, String, bindparam, delete, select, update

from hounsfield.catalog.joins import INSTANCE_FILES
from hounsfield.catalog.parse import Parsed, normalize_date, normalize_time
from hounsfield.catalog.unindex import refresh_modalities
from hounsfield.db.prepared import Prepared
from hounsfield.db.tables import file, filesystem, instance, patient, series, study
from hounsfield.db.upsert import get_or_insert

FIND_EXISTING = Prepared(
    select(instance.c.pk, filesystem.c.path, file.c.path)
    .select_from(INSTANCE_FILES)
    .where(instance.c.sop_iuid == bindparam("b_sop"), study.c.partition_pk == bindparam("b_part"))
    .limit(1)
)
_FIND_STUDY = select(study.c.pk, study.c.patient_pk).where(
    study.c.partition_pk == bindparam("b_part"), study.c.study_iuid == bindparam("b_study")
)
_STUDY_PATIENT = select(study.c.patient_pk).where(study.c.pk == bindparam("b_study_pk"))
_INSERT_INSTANCE = Prepared(
    instance.insert().returning(instance.c.pk),
    (
        "series_pk",
        "sop_iuid",
        "sop_cuid",
        "instance_number",
        "number_of_frames",
        "received_at",
        "calling_ae",
        "header",
    ),
)
_INSERT_FILE = Prepared(
    file.insert(),
    ("instance_pk", "filesystem_pk", "path", "size", "transfer_syntax", "checksum", "created_at"),
)
_BUMP_SERIES = Prepared(
    update(series)
    .where(series.c.pk == bindparam("b_series"))
    .values(num_instances=series.c.num_instances + 1)
)
_BUMP_STUDY = Prepared(
    update(study)
    .where(study.c.pk == bindparam("b_study"))
    .values(
        num_instances=study.c.num_instances + 1,
        num_series=study.c.num_series + bindparam("b_new_series"),
        size_bytes=study.c.size_bytes + bindparam("b_size"),
        updated_at=bindparam("b_now"),
    )
)
_BUMP_PATIENT = (
    update(patient)
    .where(patient.c.pk == bindparam("b_patient"))
    .values(num_studies=patient.c.num_studies + 1)
)


@dataclass(frozen=True)
class Existing:
    """An object already indexed under the same SOP Instance UID."""

    instance_pk: int
    path: Path


def find_existing(conn: Connection, partition_pk: int, sop_instance: str) -> Existing | None:
    """The indexed object with this SOP Instance UID in the partition, if any."""
    row = FIND_EXISTING.first(conn, {"b_sop": sop_instance, "b_part": partition_pk})
    return None if row is None else Existing(instance_pk=row[0], path=Path(row[1]) / row[2])


@dataclass(frozen=True)
class StoredFile:
    """Where and how an object was written."""

    filesystem_pk: int
    path: str
    transfer_syntax: str
    size: int
    checksum: str


def index_object(
    conn: Connection,
    parsed: Parsed,
    partition_pk: int,
    stored: StoredFile,
    calling_ae: str,
    parents: tuple[int, int, int] | None,
    copies: Sequence[StoredFile] = (),
) -> tuple[int, int, int]:
    """Insert the object's rows; return its (patient, study, series) pks for the cache.

    `copies` are further copies of the same file (a synchronous mirror's): a file row each,
    not counted in the study's size."""
    now = datetime.now(UTC)
    values = parsed.values
    new_study = new_series = False
    if parents is None:
        patient_pk, study_pk, series_pk, new_study, new_series = _parents(
            conn, values, partition_pk, now
        )
    else:
        patient_pk, study_pk, series_pk = parents
    instance_pk = _INSERT_INSTANCE.scalar(
        conn,
        {
            "series_pk": series_pk,
            "sop_iuid": values["SOPInstanceUID"],
            "sop_cuid": values["SOPClassUID"],
            "instance_number": _cut(instance, "instance_number", values["InstanceNumber"]),
            "number_of_frames": _frames(parsed.dataset) if values["NumberOfFrames"] else None,
            "received_at": now,
            "calling_ae": calling_ae[:16],
            "header": parsed.header,
        },
    )
    for f in (stored, *copies):
        _INSERT_FILE.execute(
            conn,
            {
                "instance_pk": instance_pk,
                "filesystem_pk": f.filesystem_pk,
                "path": f.path,
                "size": f.size,
                "transfer_syntax": f.transfer_syntax,
                "checksum": f.checksum,
                "created_at": now,
            },
        )
    _BUMP_SERIES.execute(conn, {"b_series": series_pk})
    _BUMP_STUDY.execute(
        conn,
        {"b_study": study_pk, "b_new_series": int(new_series), "b_size": stored.size, "b_now": now},
    )
    if new_series:
        refresh_modalities(conn, study_pk)
    if new_study:
        conn.execute(_BUMP_PATIENT, {"b_patient": patient_pk})
    return patient_pk, study_pk, series_pk


def match_key(patient_id: str, name: str, birth_date: str) -> str:
    """What tells apart patients without a Patient ID (one per name and birth date; a patient
    with an ID is one per ID and issuer, and gets "")."""
    return "" if patient_id else f"{birth_date}|{name}"


def _parents(
    conn: Connection, values: Mapping[str, str], partition_pk: int, now: datetime
) -> tuple[int, int, int, bool, bool]:
    """The patient, study and series rows of an object (inserted when new), and which are new.

    An object joining a stored study goes to the study's patient, whatever its own attributes."""
    study_uid = values["StudyInstanceUID"]
    found = conn.execute(_FIND_STUDY, {"b_part": partition_pk, "b_study": study_uid}).first()
    new_study = False
    if found is not None:
        study_pk, patient_pk = found
    else:
        patient_pk, new_patient = _patient(conn, values, partition_pk)
        study_pk, new_study = _study(conn, values, partition_pk, study_uid, patient_pk, now)
        if not new_study:  # another writer inserted the study meanwhile
            owner = conn.execute(_STUDY_PATIENT, {"b_study_pk": study_pk}).scalar_one()
            if new_patient and owner != patient_pk:  # drop the patient row made for nothing
                conn.execute(delete(patient).where(patient.c.pk == patient_pk))
            patient_pk = owner
    series_pk, new_series = get_or_insert(
        conn,
        series,
        {"study_pk": study_pk, "series_iuid": values["SeriesInstanceUID"]},
        _values(
            series,
            modality=values["Modality"],
            series_number=values["SeriesNumber"],
            description=values["SeriesDescription"],
            body_part=values["BodyPartExamined"],
            series_date=normalize_date(values["SeriesDate"]),
            series_time=normalize_time(values["SeriesTime"]),
        )
        | {"num_instances": 0},
    )
    return patient_pk, study_pk, series_pk, new_study, new_series


def _patient(conn: Connection, values: Mapping[str, str], partition_pk: int) -> tuple[int, bool]:
    """The patient row of an object that starts a study (inserted if new), and if it is new."""
    keys = _values(
        patient,
        partition_pk=partition_pk,
        patient_id=values["PatientID"],
        issuer=values["IssuerOfPatientID"],
    )
    demographics = _values(
        patient,
        patient_name=values["PatientName"],
        birth_date=values["PatientBirthDate"],
        sex=values["PatientSex"],
    )
    name, birth_date = demographics["patient_name"], demographics["birth_date"]
    keys["match_key"] = match_key(keys["patient_id"], name, birth_date)
    values = demographics | _values(patient, name_key=name.upper()) | {"num_studies": 0}
    return get_or_insert(conn, patient, keys, values)


def _study(
    conn: Connection,
    values: Mapping[str, str],
    partition_pk: int,
    study_uid: str,
    patient_pk: int,
    now: datetime,
) -> tuple[int, bool]:
    referring = values["ReferringPhysicianName"]
    return get_or_insert(
        conn,
        study,
        {"partition_pk": partition_pk, "study_iuid": study_uid},
        _values(
            study,
            study_date=normalize_date(values["StudyDate"]),
            study_time=normalize_time(values["StudyTime"]),
            accession_number=values["AccessionNumber"],
            study_id=values["StudyID"],
            description=values["StudyDescription"],
            referring_physician=referring,
            referring_key=referring.upper(),
        )
        | {
            "patient_pk": patient_pk,
            "created_at": now,
            "updated_at": now,
            "num_series": 0,
            "num_instances": 0,
            "size_bytes": 0,
        },
    )


def _cut(table: Any, column: str, value: str) -> str:
    kind = table.c[column].type
    return value[: kind.length] if isinstance(kind, String) and kind.length else value


def _values(table: Any, **values: Any) -> dict[str, Any]:
    return {k: _cut(table, k, v) if isinstance(v, str) else v for k, v in values.items()}


def _frames(ds: Dataset) -> int | None:
    try:
        value = ds.get("NumberOfFrames")
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
