"""The reconcile item: one reconciliation with a peer, run by whichever node claims it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hounsfield.sites.reconcile import reconcile
from hounsfield.sites.reconcile_queue import close_interrupted, item_reason, record_job_report
from hounsfield.workers.registry import register
from hounsfield.workqueue.items import Done, WorkItem
from hounsfield.workqueue.kinds import RECONCILE

if TYPE_CHECKING:
    from hounsfield.archive.context import Archive


@register(RECONCILE)
def process_reconcile(archive: Archive, item: WorkItem) -> Done:
    """Compare, repair as the item says, compare again; the report is kept. A report that an
    earlier attempt (on a node that died) left running is closed as interrupted first."""
    p = item.payload
    reason = item_reason(str(p.get("reason") or "by hand"), item.pk)
    close_interrupted(archive, reason)
    report = reconcile(
        archive,
        str(p["partition"]),
        str(p["peer"]),
        str(p["from"]),
        str(p["to"]),
        direction=str(p.get("direction", "none")),
        method=str(p.get("method", "auto")),
        depth=str(p.get("depth", "counts")),
        reason=reason,
    )
    if p.get("job"):
        record_job_report(archive, int(p["job"]), report.pk)
    return Done(f"report #{report.pk}: {report.state}, {report.differences_left} left")
