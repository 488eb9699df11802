"""Reconcile with peers: queue each due reconciliation job as a work item; purge old reports."""

from __future__ import annotations

import logging
from datetime import timedelta

from hounsfield.errors import ArchiveError
from hounsfield.scheduled.registry import Run, service
from hounsfield.sites.reconcile_queue import queue_reconcile
from hounsfield.sites.reconcile_reports import purge_reports
from hounsfield.sites.reconcile_schedule import covered, due_jobs, job_ran
from hounsfield.workqueue.items import now

log = logging.getLogger(__name__)


@service("reconcile-with-peers", interval_seconds=300, enabled=False)
def reconcile_with_peers(run: Run) -> str:
    """Queue each due reconciliation job (`hounsfield reconcile schedule`) as a `reconcile`
    work item: any node compares its period with the peer, fetches or pushes as it says,
    keeps the report and alerts on what is left; a node that dies leaves it to another."""
    outcomes: list[str] = []
    for job in due_jobs(run.archive.engine):
        lo, hi = covered(job.period, job.next_run_at)
        try:
            pk = queue_reconcile(
                run.archive,
                job.partition,
                job.peer,
                lo,
                hi,
                direction=job.direction,
                depth=job.depth,
                reason=f"job {job.name}",
                job_pk=job.pk,
            )
        except ArchiveError as exc:  # the partition or the device is gone
            log.warning("reconciliation job %s: %s", job.name, exc.message)
            outcomes.append(f"{job.name}: {exc.message}")
        else:
            outcomes.append(f"{job.name}: queued as item #{pk}" if pk else f"{job.name}: waiting")
        job_ran(run.archive.engine, job)
    return "; ".join(outcomes) if outcomes else "no reconciliation due"


@service("purge-reconcile-reports", interval_seconds=86400)
def purge_reconcile_reports(run: Run) -> str:
    """Remove reconciliation reports that finished more than `reconcile_keep_days` ago,
    keeping the newest of each partition and peer and each scheduled job's last one."""
    before = now() - timedelta(days=run.archive.settings.reconcile_keep_days)
    return f"removed {purge_reports(run.archive.engine, before)} reconciliation reports"
