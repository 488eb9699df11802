"""Reconciliations as work items: queued by the scheduled service and on request, run by any
node under a lease, run again by another node when the one running it dies."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import update

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import reconcile_job, reconcile_report
from hounsfield.sites.reconcile import checked
from hounsfield.sites.reconcile_model import dicom_date
from hounsfield.sites.reconcile_reports import FAILED, RUNNING
from hounsfield.workqueue.items import now
from hounsfield.workqueue.kinds import RECONCILE
from hounsfield.workqueue.queue import enqueue


def queue_reconcile(
    archive: Archive,
    partition: str,
    peer: str,
    date_from: str | date,
    date_to: str | date,
    *,
    direction: str = "none",
    method: str = "auto",
    depth: str = "counts",
    reason: str = "by hand",
    job_pk: int | None = None,
) -> int:
    """Check the request as `reconcile` would, then queue it; the work item's pk, or 0 when
    the same reconciliation is already waiting (it is not queued twice)."""
    part, device, lo, hi = checked(
        archive, partition, peer, date_from, date_to, direction, method, depth
    )
    payload: dict[str, Any] = {
        "partition": part.ae_title,
        "peer": device.ae_title,
        "from": dicom_date(lo),
        "to": dicom_date(hi),
        "direction": direction,
        "method": method,
        "depth": depth,
        "reason": reason,
        "job": job_pk,
    }
    key = ":".join(
        ("reconcile", part.ae_title, device.ae_title, payload["from"], payload["to"], direction)
        + ((depth,) if depth != "counts" else ())
    )
    with db.write(archive.engine) as conn:
        pk = enqueue(conn, RECONCILE.name, payload, coalesce_key=key)
    return pk or 0


def item_reason(reason: str, item_pk: int) -> str:
    """The reason a report run by work item `item_pk` carries (it names the item)."""
    suffix = f" (item {item_pk})"
    return reason[: 64 - len(suffix)] + suffix


def close_interrupted(archive: Archive, reason: str) -> int:
    """Mark the reports an earlier attempt of the same item left running as failed."""
    with db.write(archive.engine) as conn:
        return conn.execute(
            update(reconcile_report)
            .where(reconcile_report.c.reason == reason, reconcile_report.c.state == RUNNING)
            .values(
                state=FAILED,
                finished_at=now(),
                error="interrupted: the node running it stopped; run again",
            )
        ).rowcount


def record_job_report(archive: Archive, job_pk: int, report_pk: int) -> None:
    """Link a scheduled job to the report its run produced."""
    with db.write(archive.engine) as conn:
        conn.execute(
            update(reconcile_job)
            .where(reconcile_job.c.pk == job_pk)
            .values(last_report_pk=report_pk)
        )
