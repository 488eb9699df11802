"""The single ingest path for C-STORE, STOW-RS, import and reinventory."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pydicom.dataset import Dataset
from sqlalchemy.exc import IntegrityError

from hounsfield.archive.context import Archive
from hounsfield.archive.delete import RemovedFile, remove_instance_rows
from hounsfield.archive.filemeta import dataset_offset, file_meta_bytes
from hounsfield.archive.index import Existing, StoredFile, find_existing, index_object
from hounsfield.archive.metadata import invalidate as invalidate_metadata
from hounsfield.archive.parse import (
    normalize_date,
    parse_header,
    required_uids,
    text,
)
from hounsfield.db import engine as db
from hounsfield.errors import DuplicateRejected, SOPMismatch
from hounsfield.storage.files import CHECKSUM, remove_quietly, write_atomic
from hounsfield.storage.layout import object_path
from hounsfield.workqueue.study import study_stored

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
        with db.read(archive.engine) as conn:
            existing = find_existing(conn, partition_pk, sop_instance)
        if existing is not None:
            outcome = _duplicate_outcome(archive, existing, data, sop_instance)
            if outcome is not Outcome.OVERWRITTEN:
                return _replace(result, outcome)
        fs = archive.filesystems.for_write(result.size)
        target = fs.path / rel_path
        written = write_atomic(target, (meta, data), fsync=archive.settings.fsync)
        stored = StoredFile(fs.pk, rel_path, transfer_syntax, written.size, written.checksum)
        try:
            removed = _index(archive, ds, partition_pk, stored, parsed.header, calling_ae, existing)
        except BaseException:
            if existing is None or existing.path != target:
                remove_quietly(target)
            raise
        archive.filesystems.account(fs.pk, written.size)
        for old in removed:
            archive.filesystems.account(old.filesystem_pk, -old.size)
            old_path = Path(old.filesystem_path) / old.path
            if old_path != target:
                remove_quietly(old_path)
    invalidate_metadata(archive, partition, study_uid)
    study_stored(archive, partition, study_uid)
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


def _index(
    archive: Archive,
    ds: Dataset,
    partition_pk: int,
    stored: StoredFile,
    header: bytes,
    calling_ae: str,
    existing: Existing | None,
) -> list[RemovedFile]:
    """Commit the rows (replacing an overwritten object's); retry once without cached parents
    if they vanished meanwhile (another node deleted the study)."""
    key = (partition_pk, text(ds, "StudyInstanceUID"), text(ds, "SeriesInstanceUID"))
    cached = archive.parents.get(key)
    for parents in (cached, None) if cached else (None,):
        try:
            with db.write(archive.engine) as conn:
                removed = remove_instance_rows(conn, existing.instance_pk) if existing else []
                pks = index_object(conn, ds, partition_pk, stored, header, calling_ae, parents)
        except IntegrityError:
            archive.parents.forget(key)
            if parents is None:
                raise
            continue
        if removed:
            archive.parents.forget()  # rows may have gone with the replaced object
        archive.parents.put(key, pks)
        return removed
    raise AssertionError("unreachable")


def _duplicate_outcome(archive: Archive, existing: Existing, data: bytes, sop: str) -> Outcome:
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
