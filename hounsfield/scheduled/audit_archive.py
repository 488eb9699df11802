"""The audit trail's day archives: each finished day to a zip of JSON lines on the lowest
tier, then out of the database once older than the days to keep."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from hounsfield.db import engine as db
from hounsfield.db.tables import audit_event
from hounsfield.scheduled.applog import archive_day, archive_folder, day_range, days_before
from hounsfield.scheduled.registry import Run, service
from hounsfield.workqueue.items import now, utc


def _line(row: dict[str, object]) -> str:
    out = dict(row)
    out["created_at"] = utc(out["created_at"]).isoformat()  # type: ignore[arg-type,union-attr]
    return json.dumps(out, sort_keys=True)


@service("archive-audit-trail", interval_seconds=86400)
def archive_audit_trail(run: Run) -> str:
    """Archive each finished day of the audit trail to `AuditTrail/<month>/<day>.zip` on the
    lowest tier (one JSON object per line, merged with what an earlier run wrote); remove
    from the database what is older than `audit_keep_days`, archived first."""
    engine = run.archive.engine
    today = datetime.combine(now().date(), datetime.min.time(), UTC)
    keep_from = today - timedelta(days=run.archive.settings.audit_keep_days)
    folder = archive_folder(engine, "AuditTrail")
    archived = removed = 0
    for day in days_before(engine, audit_event, today):
        start, end = day_range(day)
        c = audit_event.c
        with db.read(engine) as conn:
            rows = conn.execute(
                select(audit_event)
                .where(c.created_at >= start, c.created_at < end)
                .order_by(c.created_at, c.pk)
            ).mappings()
            lines = [_line(dict(r)) for r in rows]
        if lines:
            archive_day(folder, day, lines, run.archive.settings.fsync)
            archived += 1
        if end <= keep_from:
            with db.write(engine) as conn:
                removed += conn.execute(
                    delete(audit_event).where(c.created_at >= start, c.created_at < end)
                ).rowcount
    return f"archived {archived} days to {folder}, removed {removed} records"
