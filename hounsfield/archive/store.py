"""The single ingest path for C-STORE, STOW-RS, import and reinventory.

One object per SOP Instance UID and partition holds across processes and nodes: the decision
(store, duplicate, keep, overwrite) is taken again inside the indexing transaction, under a
per-SOP guard in the database (a transaction-scoped advisory lock on PostgreSQL; SQLite's
single writer). Each write has a file of its own, so a writer only ever removes the file it
wrote, or the file of the object it replaced, after its transaction committed.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from hounsfield.archive.context import Archive
from hounsfield.archive.metadata import invalidate as invalidate_metadata
from hounsfield.archive.mirroring import MirrorWrite
from hounsfield.audit.events import MINOR_FAILURE, SUCCESS
from hounsfield.audit.trail import record
from hounsfield.catalog.index import Existing, StoredFile, find_existing, index_object
from hounsfield.catalog.parse import Parsed, normalize_date, parse_header, required_uids
from hounsfield.catalog.partitions import Partition
from hounsfield.catalog.unindex import RemovedFile, remove_instance_rows
from hounsfield.db import engine as db
from hounsfield.errors import ArchiveError, DuplicateRejected, SOPMismatch, VirtualPartition
from hounsfield.storage.atomic import CHECKSUM, remove_quietly, write_atomic
from hounsfield.storage.filemeta import dataset_offset, file_meta_bytes
from hounsfield.storage.layout import object_path, write_token
from hounsfield.workqueue.study import StudyStored

log = logging.getLogger(__name__)
_SOP_GUARD = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


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
class _Indexed:
    outcome: Outcome
    removed: list[RemovedFile]


def store(
    archive: Archive,
    transfer_syntax: str,
    data: bytes,
    *,
    calling_ae: str = "",
    partition: Partition | str | None = None,
    expected_class: str | None = None,
    expected_instance: str | None = None,
) -> StoreResult:
    """Store one dataset (bytes as received, no File Meta); durable before it returns.
    Recorded in the audit trail as done by the current actor (see `audit.events`)."""
    seen = _Seen()
    try:
        result = _store(
            archive,
            transfer_syntax,
            data,
            seen,
            calling_ae=calling_ae,
            partition=partition,
            expected_class=expected_class,
            expected_instance=expected_instance,
        )
    except Exception as exc:
        why = exc.message if isinstance(exc, ArchiveError) else type(exc).__name__
        seen.record(archive, MINOR_FAILURE, f"refused: {why}"[:200])
        raise
    seen.record(archive, SUCCESS, "")
    return result


@dataclass
class _Seen:
    """Whose object a store was, as far as it got (for its audit record)."""

    partition: str = ""
    patient_id: str = ""
    patient_name: str = ""
    study_uid: str = ""

    def record(self, archive: Archive, outcome: int, detail: str) -> None:
        """One more instance in the audit record of this caller's stores to the study."""
        record(
            archive.engine,
            "store",
            coalesce=True,
            outcome=outcome,
            partition=self.partition,
            patient_id=self.patient_id,
            patient_name=self.patient_name,
            study_uid=self.study_uid,
            count=1,
            detail=detail,
        )


def _store(
    archive: Archive,
    transfer_syntax: str,
    data: bytes,
    seen: _Seen,
    *,
    calling_ae: str,
    partition: Partition | str | None,
    expected_class: str | None,
    expected_instance: str | None,
) -> StoreResult:
    parsed = parse_header(data, transfer_syntax)
    values = parsed.values
    seen.patient_id, seen.patient_name = values["PatientID"], values["PatientName"]
    sop_class, sop_instance, study_uid, series_uid = required_uids(parsed)
    seen.study_uid = study_uid
    if expected_class and expected_class != sop_class:
        raise SOPMismatch(f"dataset SOP Class {sop_class} differs from the request's")
    if expected_instance and expected_instance != sop_instance:
        raise SOPMismatch(f"dataset SOP Instance {sop_instance} differs from the request's")
    part = archive.resolve(partition)
    seen.partition = part.ae_title
    if part.virtual:
        raise VirtualPartition(f"{part.ae_title} is virtual: store to one of its members")
    date = normalize_date(values["StudyDate"])
    rel_path = object_path(part.ae_title, date, study_uid, series_uid, sop_instance, write_token())
    meta = file_meta_bytes(sop_class, sop_instance, transfer_syntax, calling_ae)
    result = StoreResult(
        Outcome.STORED, sop_class, sop_instance, study_uid, series_uid, len(meta) + len(data)
    )

    # Most re-sent objects are identical: answer those without writing anything.
    with db.read(archive.engine) as conn:
        existing = find_existing(conn, part.pk, sop_instance)
    if existing is not None:
        outcome = _duplicate_outcome(part, existing, data, sop_instance)
        if outcome is not Outcome.OVERWRITTEN:
            return replace(result, outcome=outcome)

    fs = archive.filesystems.for_write(result.size)
    target = fs.path / rel_path
    written = write_atomic(target, (meta, data), fsync=archive.settings.fsync)
    stored = StoredFile(fs.pk, rel_path, transfer_syntax, written.size, written.checksum)
    route = archive.settings.forward_receipt_delay_seconds
    hook = StudyStored(
        str(archive.engine.url),
        part.pk,
        part.ae_title,
        study_uid,
        route_after=route if archive.routes_on_receipt(part.pk) else None,
    )
    mirror = MirrorWrite(archive, stored, part.pk, study_uid)
    try:
        mirror.write((meta, data))  # a synchronous mirror's copy, fsynced before indexing
        indexed = _index(archive, part, parsed, stored, calling_ae, data, hook, mirror)
    except BaseException:
        remove_quietly(target)  # this write's own file: nobody else names it
        mirror.discard()
        raise
    hook.committed()
    if indexed.outcome in (Outcome.DUPLICATE, Outcome.KEPT):
        remove_quietly(target)  # another writer indexed this SOP Instance meanwhile
        mirror.discard()
        return replace(result, outcome=indexed.outcome)
    archive.filesystems.account(fs.pk, written.size)
    mirror.committed()
    for old in indexed.removed:  # the files of the object this one replaced
        archive.filesystems.account(old.filesystem_pk, -old.size)
        remove_quietly(Path(old.filesystem_path) / old.path)
    invalidate_metadata(archive, part.ae_title, study_uid)
    if indexed.outcome is Outcome.OVERWRITTEN:
        log.warning(
            "SOP Instance %s overwritten by a different object from %r", sop_instance, calling_ae
        )
    return replace(result, outcome=indexed.outcome)


def guard_sop(conn: Connection, partition_pk: int, sop_instance: str) -> None:
    """Serialise writers of one SOP Instance UID until `conn`'s transaction ends (PostgreSQL;
    on SQLite the write transaction already excludes every other writer)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_SOP_GUARD, {"key": f"sop/{partition_pk}/{sop_instance}"})


def _index(
    archive: Archive,
    part: Partition,
    parsed: Parsed,
    stored: StoredFile,
    calling_ae: str,
    data: bytes,
    hook: StudyStored,
    mirror: MirrorWrite,
) -> _Indexed:
    """Decide and commit under the SOP guard: index the object (replacing an overwritten
    one's rows) and queue its study's processing, in one transaction. Retries once without
    cached parents if they vanished meanwhile (another node deleted the study)."""
    values = parsed.values
    sop_instance = values["SOPInstanceUID"]
    key = (part.pk, values["StudyInstanceUID"], values["SeriesInstanceUID"])
    cached = archive.parents.get(key)
    for parents in (cached, None) if cached else (None,):
        try:
            with db.write(archive.engine) as conn:
                guard_sop(conn, part.pk, sop_instance)
                existing = find_existing(conn, part.pk, sop_instance)
                removed: list[RemovedFile] = []
                outcome = Outcome.STORED
                if existing is not None:
                    outcome = _duplicate_outcome(part, existing, data, sop_instance)
                    if outcome is not Outcome.OVERWRITTEN:
                        return _Indexed(outcome, [])
                    removed = remove_instance_rows(conn, existing.instance_pk)
                pks = index_object(
                    conn, parsed, part.pk, stored, calling_ae, parents, mirror.copies
                )
                hook.enqueue(conn, archive.settings.study_settle_seconds)
                mirror.enqueue(conn, pks[1])  # an asynchronous mirror's copy, queued
        except IntegrityError:
            archive.parents.forget(key)
            if parents is None:
                raise
            continue
        if removed:
            archive.parents.forget()  # rows may have gone with the replaced object
        archive.parents.put(key, pks)
        return _Indexed(outcome, removed)
    raise AssertionError("unreachable")


def _duplicate_outcome(part: Partition, existing: Existing, data: bytes, sop: str) -> Outcome:
    if _same_dataset(existing.path, data):
        log.info("SOP Instance %s received again, identical: nothing changed", sop)
        return Outcome.DUPLICATE
    policy = part.duplicate_policy
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
