"""Reading the audit trail: records filtered by time, event, who, patient, study, outcome;
every reading is itself recorded (Audit Log Used)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, or_, select

from hounsfield.audit.events import OUTCOMES, SUCCESS
from hounsfield.audit.trail import record
from hounsfield.db import engine as db
from hounsfield.db.tables import audit_event
from hounsfield.errors import InvalidRequest


def moment(value: str | None, name: str = "time") -> datetime | None:
    """A time given as ISO 8601 (UTC when no zone), or as hours or days ago ('24h', '7d')."""
    if not value:
        return None
    if value[-1:] in ("h", "d") and value[:-1].replace(".", "", 1).isdigit():
        amount = float(value[:-1])
        return datetime.now(UTC) - timedelta(hours=amount if value[-1] == "h" else amount * 24)
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest(
            f"{name}: not a time: {value!r} (use 2026-11-30, 2026-11-30T08:00, 24h or 7d)"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class AuditFilter:
    """Which records to list; empty fields match everything."""

    since: datetime | None = None
    until: datetime | None = None
    event: str = ""
    user: str = ""  # a user name or a calling AE title
    host: str = ""
    patient_id: str = ""
    study_uid: str = ""
    partition: str = ""
    failures: bool = False  # only what did not succeed
    limit: int = 200

    def describe(self) -> str:
        """The filter in words (for the record of its use)."""
        given = {k: v for k, v in asdict(self).items() if v not in (None, "", False)}
        return ", ".join(f"{k}={v}" for k, v in given.items())


@dataclass(frozen=True)
class AuditRecord:
    """One record of the audit trail."""

    pk: int
    created_at: datetime
    event: str
    outcome: int
    user: str
    ae_title: str
    host: str
    called: str
    protocol: str
    partition: str
    patient_id: str
    patient_name: str
    study_uid: str
    count: int
    detail: str
    node: str

    @property
    def outcome_text(self) -> str:
        """The outcome in words."""
        return OUTCOMES.get(self.outcome, str(self.outcome))

    def as_dict(self) -> dict[str, Any]:
        """As JSON-ready values."""
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        out["outcome_text"] = self.outcome_text
        return out


def _where(f: AuditFilter) -> list[Any]:
    c = audit_event.c
    conds: list[Any] = []
    if f.since is not None:
        conds.append(c.created_at >= f.since)
    if f.until is not None:
        conds.append(c.created_at < f.until)
    if f.event:
        conds.append(c.event == f.event)
    if f.user:
        conds.append(or_(c.user_name == f.user, c.ae_title == f.user))
    if f.host:
        conds.append(c.remote_host == f.host)
    if f.patient_id:
        conds.append(c.patient_id == f.patient_id)
    if f.study_uid:
        conds.append(c.study_iuid == f.study_uid)
    if f.partition:
        conds.append(c.partition == f.partition)
    if f.failures:
        conds.append(c.outcome != SUCCESS)
    return conds


def list_records(engine: Engine, f: AuditFilter) -> list[AuditRecord]:
    """The newest records matching `f`, newest first; recorded as a use of the trail."""
    c = audit_event.c
    stmt = select(audit_event).where(*_where(f)).order_by(c.created_at.desc(), c.pk.desc())
    with db.read(engine) as conn:
        rows = conn.execute(stmt.limit(max(1, min(f.limit, 10_000)))).mappings().all()
    record(engine, "audit-read", count=len(rows), detail=f.describe())
    return [_record(r) for r in rows]


def _record(r: Any) -> AuditRecord:
    created = r["created_at"]
    if created.tzinfo is None:  # SQLite gives naive UTC back
        created = created.replace(tzinfo=UTC)
    return AuditRecord(
        r["pk"],
        created,
        r["event"],
        r["outcome"],
        r["user_name"],
        r["ae_title"],
        r["remote_host"],
        r["called"],
        r["protocol"],
        r["partition"],
        r["patient_id"],
        r["patient_name"],
        r["study_iuid"],
        r["count"],
        r["detail"],
        r["node"],
    )
