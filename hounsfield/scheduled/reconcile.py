"""Reconcile with peers: run the due reconciliation jobs, keeping the service's lock alive."""

from __future__ import annotations

import logging
import time

from hounsfield.errors import ArchiveError
from hounsfield.scheduled.registry import Run, service
from hounsfield.sites.reconcile import reconcile
from hounsfield.sites.reconcile_schedule import covered, due_jobs, job_ran

log = logging.getLogger(__name__)
HEARTBEAT = 60.0  # seconds between lock renewals while a reconciliation runs


@service("reconcile-with-peers", interval_seconds=300, enabled=False)
def reconcile_with_peers(run: Run) -> str:
    """Run each due reconciliation job (`hounsfield reconcile schedule`): compare its period
    with the peer, fetch or push as it says, keep the report and alert on what is left."""
    beat = [time.monotonic()]

    def heartbeat(_phase: str, _done: int, _total: int | None) -> None:
        if time.monotonic() - beat[0] >= HEARTBEAT:
            run.checkpoint()
            beat[0] = time.monotonic()

    outcomes: list[str] = []
    for job in due_jobs(run.archive.engine):
        lo, hi = covered(job.period, job.next_run_at)
        try:
            report = reconcile(
                run.archive,
                job.partition,
                job.peer,
                lo,
                hi,
                direction=job.direction,
                reason=f"job {job.name}",
                progress=heartbeat,
            )
        except ArchiveError as exc:  # the partition or the device is gone
            log.warning("reconciliation job %s: %s", job.name, exc.message)
            job_ran(run.archive.engine, job, None)
            outcomes.append(f"{job.name}: {exc.message}")
            continue
        job_ran(run.archive.engine, job, report.pk)
        run.checkpoint()
        outcomes.append(f"{job.name}: #{report.pk} {report.state}, {report.differences_left} left")
    return "; ".join(outcomes) if outcomes else "no reconciliation due"
