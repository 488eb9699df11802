"""Reading what the audit trail recorded, once everything held is written."""

from __future__ import annotations

from hounsfield.archive.context import Archive
from hounsfield.audit import trail
from hounsfield.audit.records import AuditFilter, AuditRecord, list_records


def recorded(archive: Archive, **wanted: object) -> list[AuditRecord]:
    """Every record matching `wanted` (an AuditFilter's fields), oldest first."""
    trail.flush(archive.engine)
    rows = list_records(archive.engine, AuditFilter(limit=10_000, **wanted))  # type: ignore[arg-type]
    return [r for r in reversed(rows) if r.event != "audit-read"]
