"""Housekeeping services: reapply rules, rebuild metadata, compress, purge items and alerts,
recount filesystem usage."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from hounsfield.alerts import purge_alerts, raise_alert
from hounsfield.db import engine as db
from hounsfield.db.tables import partition, study, study_outcome
from hounsfield.scheduled.applog import archive_alerts
from hounsfield.scheduled.registry import Run, service
from hounsfield.storage.usage import recount
from hounsfield.workqueue.admin import purge_finished
from hounsfield.workqueue.items import now
from hounsfield.workqueue.study import request_compression, request_processing

BATCH = 500


def _process_every_study(run: Run) -> str:
    """Queue a "process study" item for every study after the saved cursor."""
    after = int(run.state.get("after_pk", 0))
    queued = 0
    while True:
        with db.write(run.archive.engine) as conn:
            rows = conn.execute(
                select(study.c.pk, study.c.partition_pk, partition.c.ae_title, study.c.study_iuid)
                .join(partition, partition.c.pk == study.c.partition_pk)
                .where(study.c.pk > after)
                .order_by(study.c.pk)
                .limit(BATCH)
            ).all()
            for pk, part_pk, title, uid in rows:
                request_processing(conn, part_pk, title, uid)
                after = pk
            queued += len(rows)
        if len(rows) < BATCH:
            break
        run.state["after_pk"] = after
        run.checkpoint()
    run.state.clear()
    run.disable_after = True
    return f"queued processing of {queued} studies"


@service("reapply-rules", interval_seconds=86400, enabled=False)
def reapply_rules(run: Run) -> str:
    """Recompute every study's rule outcome (after the rules changed); runs once when enabled."""
    return _process_every_study(run)


@service("rebuild-study-metadata", interval_seconds=86400, enabled=False)
def rebuild_metadata(run: Run) -> str:
    """Rebuild every study's metadata document (through "process study"); runs once."""
    return _process_every_study(run)


def _compress_due(run: Run, action: str) -> str:
    with db.write(run.archive.engine) as conn:
        rows = conn.execute(
            select(
                study_outcome.c.study_pk,
                study_outcome.c.params,
                study.c.partition_pk,
                study.c.study_iuid,
            )
            .join(study, study.c.pk == study_outcome.c.study_pk)
            .where(study_outcome.c.action == action, study_outcome.c.eligible_at <= now())
            .order_by(study_outcome.c.eligible_at)
            .limit(BATCH)
        ).all()
        queued = 0
        for study_pk, params, part_pk, uid in rows:
            pk = request_compression(conn, part_pk, uid, study_pk, action, params)
            queued += pk is not None
    return f"queued {queued} studies for {action}"


@service("lossless-compress", interval_seconds=3600)
def lossless_compress(run: Run) -> str:
    """Compress, losslessly, the studies whose rules made them eligible."""
    return _compress_due(run, "lossless-compress")


@service("lossy-compress", interval_seconds=3600)
def lossy_compress(run: Run) -> str:
    """Compress, lossily, the studies whose rules made them eligible and allow it."""
    return _compress_due(run, "lossy-compress")


@service("purge-work-items", interval_seconds=3600)
def purge_work_items(run: Run) -> str:
    """Remove completed and cancelled work items older than the configured time."""
    hours = run.archive.settings.queue_keep_completed_hours
    removed = purge_finished(run.archive.engine, now() - timedelta(hours=hours))
    return f"removed {removed} finished work items"


@service("purge-alerts", interval_seconds=86400)
def purge_old_alerts(run: Run) -> str:
    """Remove alerts older than the configured number of days (archived to day zips on the
    lowest tier first when `alert_archive` is set)."""
    before = now() - timedelta(days=run.archive.settings.alert_keep_days)
    archived = ""
    if run.archive.settings.alert_archive:
        archived = f", archived {archive_alerts(run, before)} days first"
    return f"removed {purge_alerts(run.archive.engine, before)} alerts{archived}"


@service("recount-usage", interval_seconds=86400)
def recount_usage(run: Run) -> str:
    """Check the filesystem usage counters against the file table and correct any drift
    (with an alert: something changed files behind the index)."""
    drift = recount(run.archive.engine)
    if not drift:
        return "usage counters exact"
    described = ", ".join(f"filesystem {pk}: {delta:+d} bytes" for pk, delta in drift.items())
    raise_alert(run.archive.engine, "warning", "storage", "usage", f"corrected {described}")
    run.archive.filesystems.invalidate()
    return f"corrected {described}"
