"""The audit trail's filter as query parameters, shared by /admin/audit and /ui/audit."""

from __future__ import annotations

from fastapi import Query

from hounsfield.audit.events import KINDS
from hounsfield.audit.records import AuditFilter, moment
from hounsfield.errors import InvalidRequest


def audit_filter(
    since: str = Query(
        "", description="From this time (ISO 8601, UTC when no zone; or 24h, 7d ago)."
    ),
    until: str = Query("", description="Before this time (ISO 8601, or 1h ago)."),
    event: str = Query("", description=f"One kind: {', '.join(KINDS)}."),
    user: str = Query("", description="A user name or calling AE title."),
    host: str = Query("", description="A caller's address."),
    patient: str = Query("", description="A Patient ID."),
    study: str = Query("", description="A Study Instance UID."),
    partition: str = Query("", description="A partition's AE title."),
    failures: bool = Query(False, description="Only what did not succeed."),
    limit: int = Query(200, ge=1, le=10_000),
) -> AuditFilter:
    """The filter the query parameters describe."""
    if event and event not in KINDS:
        raise InvalidRequest(f"unknown event {event!r}; one of: {', '.join(KINDS)}")
    return AuditFilter(
        since=moment(since, "since"),
        until=moment(until, "until"),
        event=event,
        user=user,
        host=host,
        patient_id=patient,
        study_uid=study,
        partition=partition,
        failures=failures,
        limit=limit,
    )
