"""The audit trail's filter as query parameters, shared by /admin/audit and /ui/audit."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Query

from hounsfield.audit.events import KINDS
from hounsfield.audit.records import AuditFilter
from hounsfield.errors import InvalidRequest


def _moment(value: str, name: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest(f"{name}: not an ISO 8601 time: {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def audit_filter(
    since: str = Query("", description="From this time (ISO 8601; UTC when no zone)."),
    until: str = Query("", description="Before this time (ISO 8601)."),
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
        since=_moment(since, "since"),
        until=_moment(until, "until"),
        event=event,
        user=user,
        host=host,
        patient_id=patient,
        study_uid=study,
        partition=partition,
        failures=failures,
        limit=limit,
    )
