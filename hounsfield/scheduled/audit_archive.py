"""The audit trail's day archives: each finished day to a zip of JSON lines on the lowest
tier, then out of the database once older than the days to keep."""

from __future__ import annotations

import json

from sqlalchemy import RowMapping

from hounsfield.db.tables import audit_event
from hounsfield.scheduled.applog import archive_table
from hounsfield.scheduled.registry import Run, service
from hounsfield.workqueue.items import utc


def _line(row: RowMapping) -> str:
    out = dict(row)
    out["created_at"] = utc(out["created_at"]).isoformat()  # type: ignore[arg-type,union-attr]
    return json.dumps(out, sort_keys=True)


@service("archive-audit-trail", interval_seconds=86400)
def archive_audit_trail(run: Run) -> str:
    """Archive each finished day of the audit trail to `AuditTrail/<month>/<day>.zip` on the
    lowest tier (one JSON object per line, merged with what an earlier run wrote); remove
    from the database what is older than `audit_keep_days`, archived first."""
    keep = run.archive.settings.audit_keep_days
    return archive_table(run, audit_event, "AuditTrail", keep, _line)
