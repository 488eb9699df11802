"""Storage commitment results for forwards: recorded when a destination reports, on the
forwarding association or on one it opens to this node."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydicom.dataset import Dataset
from sqlalchemy import select

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import work_item
from hounsfield.sites.forward_state import commitment_report
from hounsfield.workqueue.items import WAITING
from hounsfield.workqueue.queue import complete_waiting, hurry

log = logging.getLogger(__name__)
SUCCESS, NO_SUCH_EVENT, INVALID_ARGUMENT = 0x0000, 0x0113, 0x0115


def record_report(archive: Archive, event_type: int, info: Dataset) -> int:
    """Record a Storage Commitment result (N-EVENT-REPORT type 1: all committed, 2: some
    failed); the status to answer. A report for a transaction this node did not request is
    acknowledged and ignored."""
    if event_type not in (1, 2):
        return NO_SUCH_EVENT
    try:
        transaction = str(info.TransactionUID)
        kept = [str(i.ReferencedSOPInstanceUID) for i in info.get("ReferencedSOPSequence", [])]
        refused = [str(i.ReferencedSOPInstanceUID) for i in info.get("FailedSOPSequence", [])]
    except (AttributeError, KeyError, TypeError, ValueError):
        return INVALID_ARGUMENT
    report = commitment_report(archive.engine, transaction, kept, refused)
    if report is None:
        log.warning("storage commitment report for unknown transaction %s ignored", transaction)
        return SUCCESS
    with db.write(archive.engine) as conn:
        pk = conn.scalar(
            select(work_item.c.pk).where(
                work_item.c.coalesce_key == report.key, work_item.c.status.in_(WAITING)
            )
        )
        if pk is not None:
            if report.complete:
                complete_waiting(conn, int(pk), "every instance committed")
            elif report.refused:
                hurry(conn, int(pk))
    log.info(
        "storage commitment %s: %d committed, %d refused", transaction, len(kept), len(refused)
    )
    return SUCCESS


def report_handler(archive: Archive) -> Callable[[int, Dataset], int]:
    """`record_report` bound to an archive, for a forwarding association."""
    return lambda event_type, info: record_report(archive, event_type, info)
