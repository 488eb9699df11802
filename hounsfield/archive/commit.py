"""Storage commitment: prove each referenced object is stored and intact."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import select

from hounsfield.archive.context import Archive
from hounsfield.catalog.joins import INSTANCE_FILES
from hounsfield.catalog.partitions import Partition
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, instance, study
from hounsfield.storage.atomic import file_checksum
from hounsfield.workqueue.items import now
from hounsfield.workqueue.kinds import COMMITMENT_REPORT
from hounsfield.workqueue.queue import complete_waiting, enqueue, hurry

log = logging.getLogger(__name__)

NO_SUCH_OBJECT = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119
PROCESSING_FAILURE = 0x0110


# The report waits this long for the requestor's own association before any node sends it
# over a new one.
REPORT_DELAY_SECONDS = 10.0


@dataclass(frozen=True)
class Request:
    """One Request Storage Commitment, as the work item that reports on it keeps it."""

    transaction: str
    refs: list[tuple[str, str]]
    partition: str
    peer: str

    def payload(self) -> dict[str, Any]:
        """The work item's payload."""
        return {
            "transaction": self.transaction,
            "refs": [list(r) for r in self.refs],
            "partition": self.partition,
            "peer": self.peer,
        }

    @classmethod
    def of(cls, payload: dict[str, Any]) -> Request:
        """Back from a work item's payload."""
        refs = [(str(c), str(i)) for c, i in payload["refs"]]
        return cls(str(payload["transaction"]), refs, str(payload["partition"]), payload["peer"])


def request_commitment(archive: Archive, request: Request) -> int:
    """Record a commitment request durably: a `commitment-report` work item that verifies and
    reports from any node, unless the report reaches the requestor first (`reported`)."""
    at = now() + timedelta(seconds=REPORT_DELAY_SECONDS)
    with db.write(archive.engine) as conn:
        pk = enqueue(conn, COMMITMENT_REPORT.name, request.payload(), at=at)
    assert pk is not None
    return pk


def reported(archive: Archive, item_pk: int) -> bool:
    """The report went out on the requestor's association: the work item has nothing to do
    (False if a worker took it meanwhile; the requestor may then get the report twice)."""
    with db.write(archive.engine) as conn:
        return complete_waiting(conn, item_pk, "reported on the requesting association")


def report_elsewhere(archive: Archive, item_pk: int) -> None:
    """The requestor's association is gone: let any worker report now."""
    with db.write(archive.engine) as conn:
        hurry(conn, item_pk)


@dataclass
class Commitment:
    """The verdict for every reference of one commitment request."""

    success: list[tuple[str, str]] = field(default_factory=list)
    failure: list[tuple[str, str, int]] = field(default_factory=list)


def verify(
    archive: Archive, refs: list[tuple[str, str]], partition: Partition | str | None = None
) -> Commitment:
    """Check that each (SOP class, SOP instance) is indexed and a copy of it matches its
    checksum: the primary file, else its mirror's (or another tier's) copy."""
    partition_pk = archive.resolve(partition).pk
    wanted = [iuid for _, iuid in refs]
    found: dict[str, tuple[str, list[tuple[Path, str]]]] = {}
    with db.read(archive.engine) as conn:
        for start in range(0, len(wanted), 500):
            rows = conn.execute(
                select(
                    instance.c.sop_iuid,
                    instance.c.sop_cuid,
                    filesystem.c.path,
                    file.c.path,
                    file.c.checksum,
                )
                .select_from(INSTANCE_FILES)
                .where(
                    study.c.partition_pk == partition_pk,
                    instance.c.sop_iuid.in_(wanted[start : start + 500]),
                )
                .order_by(filesystem.c.mirror_of_pk.is_not(None), file.c.pk)
            ).all()
            for iuid, cuid, root, rel, checksum in rows:
                found.setdefault(iuid, (cuid, []))[1].append((Path(root) / rel, checksum))
    out = Commitment()
    for cuid, iuid in refs:
        reason = _check(found.get(iuid), cuid)
        if reason is None:
            out.success.append((cuid, iuid))
        else:
            log.warning("storage commitment failed for %s: 0x%04X", iuid, reason)
            out.failure.append((cuid, iuid, reason))
    return out


def _check(found: tuple[str, list[tuple[Path, str]]] | None, cuid: str) -> int | None:
    if found is None:
        return NO_SUCH_OBJECT
    stored_class, copies = found
    if stored_class != cuid:
        return CLASS_INSTANCE_CONFLICT
    for n, (path, checksum) in enumerate(copies):
        try:
            if file_checksum(path) == checksum:
                if n:
                    log.warning("storage commitment: %s is missing or changed", copies[0][0])
                return None
        except OSError:
            continue
    return PROCESSING_FAILURE


SUCCESS_EVENT, FAILURE_EVENT = 1, 2
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"  # the well-known SOP instance


def report_dataset(transaction: str, result: Commitment) -> tuple[int, Dataset]:
    """The N-EVENT-REPORT event type and information for a verdict."""
    ds = Dataset()
    ds.TransactionUID = transaction
    ds.ReferencedSOPSequence = []
    for cuid, iuid in result.success:
        item = Dataset()
        item.ReferencedSOPClassUID = cuid
        item.ReferencedSOPInstanceUID = iuid
        ds.ReferencedSOPSequence.append(item)
    if result.failure:
        ds.FailedSOPSequence = []
        for cuid, iuid, reason in result.failure:
            item = Dataset()
            item.ReferencedSOPClassUID = cuid
            item.ReferencedSOPInstanceUID = iuid
            item.FailureReason = reason
            ds.FailedSOPSequence.append(item)
    if not ds.ReferencedSOPSequence:
        del ds.ReferencedSOPSequence
    return (FAILURE_EVENT if result.failure else SUCCESS_EVENT), ds
