"""The single ingest path for C-STORE, STOW-RS, import and reinventory."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import Connection, String, select, update

from hounsfield.archive.context import Archive
from hounsfield.archive.delete import refresh_modalities, remove_instance_rows
from hounsfield.archive.filemeta import dataset_offset, file_meta_bytes
from hounsfield.archive.parse import (
    normalize_date,
    normalize_time,
    parse_header,
    required_uids,
    text,
)
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, instance, patient, series, study
from hounsfield.db.upsert import get_or_insert
from hounsfield.errors import DuplicateRejected, SOPMismatch
from hounsfield.storage.files import CHECKSUM, remove_quietly, write_atomic
from hounsfield.storage.layout import object_path

log = logging.getLogger(__name__)
_LOCKS = [threading.Lock() for _ in range(64)]


class Outcome(Enum):
    """What happened to one offered object."""

    STORED = "stored"
    DUPLICATE = "duplicate"  # identical object already stored: nothing changed
    KEPT = "kept"  # different object, same SOP Instance UID, existing one kept
    OVERWRITTEN = "overwritten"


@dataclass(frozen=True)
class StoreResult:
    """The outcome and identity of one stored object."""

    outcome: Outcome
    sop_class: str
    sop_instance: str
    study: str
    series: str
    size: int


@dataclass(frozen=True)
class _Existing:
    instance_pk: int
    path: Path


def store(
    archive: Archive,
    transfer_syntax: str,
    data: bytes,
    *,
    calling_ae: str = "",
    partition: str | None = None,
    expected_class: str | None = None,
    expected_instance: str | None = None,
) -> StoreResult:
    """Store one dataset (bytes as received, no File Meta); durable before it returns."""
    parsed = parse_header(data, transfer_syntax)
    ds = parsed.dataset
    sop_class, sop_instance, study_uid, series_uid = required_uids(ds)
    if expected_class and expected_class != sop_class:
        raise SOPMismatch(f"dataset SOP Class {sop_class} differs from the request's")
    if expected_instance and expected_instance != sop_instance:
        raise SOPMismatch(f"dataset SOP Instance {sop_instance} differs from the request's")
    partition = partition or archive.default_partition
    partition_pk = archive.partition_pk(partition)
    rel_path = object_path(
        partition, normalize_date(text(ds, "StudyDate")), study_uid, series_uid, sop_instance
    )
    meta = file_meta_bytes(sop_class, sop_instance, transfer_syntax, calling_ae)
    result = StoreResult(
        Outcome.STORED, sop_class, sop_instance, study_uid, series_uid, len(meta) + len(data)
    )

    with _LOCKS[hash(sop_instance) % len(_LOCKS)]:
        existing = _find_existing(archive, partition_pk, sop_instance)
        if existing is not None:
            outcome = _duplicate_outcome(archive, existing, data, sop_instance)
            if outcome is not Outcome.OVERWRITTEN:
                return _replace(result, outcome)
        fs = archive.filesystems.for_write(result.size)
        target = fs.path / rel_path
        written = write_atomic(target, (meta, data), fsync=archive.settings.fsync)
        try:
            with db.write(archive.engine) as conn:
                removed = []
                if existing is not None:
                    removed = remove_instance_rows(conn, existing.instance_pk)
                _index(
                    conn,
                    ds,
                    partition_pk,
                    fs.pk,
                    rel_path,
                    transfer_syntax,
                    written.size,
                    written.checksum,
                    parsed.header,
                    calling_ae,
                )
        except BaseException:
            if existing is None or existing.path != target:
                remove_quietly(target)
            raise
        archive.filesystems.account(fs.pk, written.size)
        for old in removed:
            archive.filesystems.account(fs.pk, -old.size)
            old_path = Path(old.filesystem_path) / old.path
            if old_path != target:
                remove_quietly(old_path)
    if existing is not None:
        log.warning(
            "SOP Instance %s overwritten by a different object from %r", sop_instance, calling_ae
        )
        return _replace(result, Outcome.OVERWRITTEN)
    return result


def _replace(result: StoreResult, outcome: Outcome) -> StoreResult:
    return StoreResult(
        outcome, result.sop_class, result.sop_instance, result.study, result.series, result.size
    )


def _find_existing(archive: Archive, partition_pk: int, sop_instance: str) -> _Existing | None:
    with db.read(archive.engine) as conn:
        row = conn.execute(
            select(instance.c.pk, filesystem.c.path, file.c.path)
            .join(series, series.c.pk == instance.c.series_pk)
            .join(study, study.c.pk == series.c.study_pk)
            .join(file, file.c.instance_pk == instance.c.pk)
            .join(filesystem, filesystem.c.pk == file.c.filesystem_pk)
            .where(instance.c.sop_iuid == sop_instance, study.c.partition_pk == partition_pk)
            .limit(1)
        ).first()
    if row is None:
        return None
    return _Existing(instance_pk=row[0], path=Path(row[1]) / row[2])


def _duplicate_outcome(archive: Archive, existing: _Existing, data: bytes, sop: str) -> Outcome:
    if _same_dataset(existing.path, data):
        log.info("SOP Instance %s received again, identical: nothing changed", sop)
        return Outcome.DUPLICATE
    policy = archive.settings.duplicate_policy
    if policy == "reject":
        log.warning("SOP Instance %s refused: a different object is stored (policy reject)", sop)
        raise DuplicateRejected(f"a different object with SOP Instance UID {sop} is stored")
    if policy == "keep":
        log.warning("SOP Instance %s received with different content: existing kept", sop)
        return Outcome.KEPT
    return Outcome.OVERWRITTEN


def _same_dataset(path: Path, data: bytes) -> bool:
    try:
        offset = dataset_offset(str(path))
        with open(path, "rb") as fh:
            fh.seek(offset)
            stored = hashlib.new(CHECKSUM)
            while chunk := fh.read(1 << 20):
                stored.update(chunk)
    except OSError:
        return False
    return stored.digest() == hashlib.new(CHECKSUM, data).digest()


def _cut(table: Any, column: str, value: str) -> str:
    length = getattr(table.c[column].type, "length", None)
    return value[:length] if isinstance(table.c[column].type, String) and length else value


def _values(table: Any, **values: str) -> dict[str, str]:
    return {k: _cut(table, k, v) for k, v in values.items()}


def _index(
    conn: Connection,
    ds: Dataset,
    partition_pk: int,
    filesystem_pk: int,
    rel_path: str,
    transfer_syntax: str,
    size: int,
    checksum: str,
    header: bytes,
    calling_ae: str,
) -> None:
    now = datetime.now(UTC)
    patient_pk, _ = get_or_insert(
        conn,
        patient,
        _values(
            patient,
            partition_pk=partition_pk,
            patient_id=text(ds, "PatientID"),  # type: ignore[arg-type]
            issuer=text(ds, "IssuerOfPatientID"),
        ),
        _values(
            patient,
            patient_name=text(ds, "PatientName"),
            name_key=text(ds, "PatientName").upper(),
            birth_date=text(ds, "PatientBirthDate"),
            sex=text(ds, "PatientSex"),
        )
        | {"num_studies": 0},
    )
    study_pk, new_study = get_or_insert(
        conn,
        study,
        {"partition_pk": partition_pk, "study_iuid": text(ds, "StudyInstanceUID")},
        _values(
            study,
            study_date=normalize_date(text(ds, "StudyDate")),
            study_time=normalize_time(text(ds, "StudyTime")),
            accession_number=text(ds, "AccessionNumber"),
            study_id=text(ds, "StudyID"),
            description=text(ds, "StudyDescription"),
            referring_physician=text(ds, "ReferringPhysicianName"),
            referring_key=text(ds, "ReferringPhysicianName").upper(),
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
    if new_study:
        conn.execute(
            update(patient)
            .where(patient.c.pk == patient_pk)
            .values(num_studies=patient.c.num_studies + 1)
        )
    series_pk, new_series = get_or_insert(
        conn,
        series,
        {"study_pk": study_pk, "series_iuid": text(ds, "SeriesInstanceUID")},
        _values(
            series,
            modality=text(ds, "Modality"),
            series_number=text(ds, "SeriesNumber"),
            description=text(ds, "SeriesDescription"),
            body_part=text(ds, "BodyPartExamined"),
            series_date=normalize_date(text(ds, "SeriesDate")),
            series_time=normalize_time(text(ds, "SeriesTime")),
        )
        | {"num_instances": 0},
    )
    instance_pk = conn.execute(
        instance.insert().values(
            series_pk=series_pk,
            sop_iuid=text(ds, "SOPInstanceUID"),
            sop_cuid=text(ds, "SOPClassUID"),
            instance_number=_cut(instance, "instance_number", text(ds, "InstanceNumber")),
            number_of_frames=_frames(ds),
            received_at=now,
            calling_ae=calling_ae[:16],
            header=header,
        )
    ).inserted_primary_key[0]
    conn.execute(
        file.insert().values(
            instance_pk=instance_pk,
            filesystem_pk=filesystem_pk,
            path=rel_path,
            size=size,
            transfer_syntax=transfer_syntax,
            checksum=checksum,
            created_at=now,
        )
    )
    conn.execute(
        update(series)
        .where(series.c.pk == series_pk)
        .values(num_instances=series.c.num_instances + 1)
    )
    conn.execute(
        update(study)
        .where(study.c.pk == study_pk)
        .values(
            num_instances=study.c.num_instances + 1,
            num_series=study.c.num_series + (1 if new_series else 0),
            size_bytes=study.c.size_bytes + size,
            updated_at=now,
        )
    )
    if new_series:
        refresh_modalities(conn, study_pk)


def _frames(ds: Dataset) -> int | None:
    try:
        value = ds.get("NumberOfFrames")
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


__all__ = ["Outcome", "StoreResult", "store"]
