"""Reconciliation reports in the database: begun, finished, listed and shown."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, delete, func, select, update

from hounsfield.db import engine as db
from hounsfield.db.tables import reconcile_difference, reconcile_job, reconcile_report
from hounsfield.errors import NotFound
from hounsfield.sites.reconcile_model import (
    EXTRA,
    MISSING,
    Comparison,
    Difference,
    dicom_date,
)
from hounsfield.workqueue.items import now, utc

RUNNING, COMPLETE, INCOMPLETE, FAILED = "running", "complete", "incomplete", "failed"


@dataclass
class Report:
    """One reconciliation as kept: its scope, state, counts, per-day table, notes and (when
    read with `get_report`) its differences, pass 1 as found and pass 2 left after repair."""

    pk: int
    partition: str
    peer: str
    date_from: str
    date_to: str
    direction: str
    reason: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    local_studies: int
    local_instances: int
    peer_studies: int
    peer_instances: int
    missing: int
    extra: int
    fetched: int
    pushed: int
    missing_left: int
    extra_left: int
    passes: int = 1
    days: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""
    found: list[Difference] = field(default_factory=list)
    left: list[Difference] = field(default_factory=list)

    @property
    def differences_left(self) -> int:
        """Objects still held by one side only."""
        return self.missing_left + self.extra_left

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (CLI --json, admin API)."""
        out = asdict(self)
        for key in ("started_at", "finished_at"):
            value = out[key]
            out[key] = value.isoformat() if value is not None else None
        return out


def begin_report(
    engine: Engine, partition: str, peer: str, lo: date, hi: date, direction: str, reason: str
) -> int:
    """Record a reconciliation as running; its pk."""
    with db.write(engine) as conn:
        inserted = conn.execute(
            reconcile_report.insert().values(
                partition_ae=partition,
                peer_ae=peer,
                date_from=dicom_date(lo),
                date_to=dicom_date(hi),
                direction=direction,
                reason=reason[:64],
                state=RUNNING,
                started_at=now(),  # the counts, days and notes start from their defaults
            )
        ).inserted_primary_key
    return int(inserted[0])  # type: ignore[index]


def finish_report(
    engine: Engine,
    pk: int,
    first: Comparison,
    repaired: list[Difference],
    last: Comparison,
) -> None:
    """Record how a reconciliation ended: the first pass's differences with their repair,
    and what the last pass (the first, when nothing was repaired) still found."""
    days = first.days
    notes = [*first.notes, *first.incomplete]
    notes += [n for n in (*last.notes, *last.incomplete) if n not in notes]
    values = {
        "state": INCOMPLETE if first.incomplete or last.incomplete else COMPLETE,
        "finished_at": now(),
        "local_studies": sum(d.local_studies for d in days),
        "local_instances": sum(d.local_instances for d in days),
        "peer_studies": sum(d.peer_studies for d in days),
        "peer_instances": sum(d.peer_instances for d in days),
        "missing": first.objects(MISSING),
        "extra": first.objects(EXTRA),
        "fetched": sum(d.instances for d in repaired if d.repair == "fetched"),
        "pushed": sum(d.instances for d in repaired if d.repair == "pushed"),
        "missing_left": last.objects(MISSING),
        "extra_left": last.objects(EXTRA),
        "passes": 1 if last is first else 2,
        "days": json.dumps([asdict(d) for d in days]),
        "notes": json.dumps(notes),
    }
    by_key = {_key(d): d for d in repaired}
    found = [by_key.get(_key(d), d) for d in first.differences]
    with db.write(engine) as conn:
        conn.execute(update(reconcile_report).where(reconcile_report.c.pk == pk).values(values))
        rows = [_row(pk, 1, d) for d in found]
        rows += [_row(pk, 2, d) for d in last.differences] if last is not first else []
        if rows:
            conn.execute(reconcile_difference.insert(), rows)


def fail_report(engine: Engine, pk: int, error: str) -> None:
    """Record that a reconciliation could not finish, and why."""
    with db.write(engine) as conn:
        conn.execute(
            update(reconcile_report)
            .where(reconcile_report.c.pk == pk)
            .values(state=FAILED, finished_at=now(), error=error)
        )


def purge_reports(engine: Engine, before: datetime) -> int:
    """Remove the reports (and their differences) that finished before `before`, except the
    newest finished one of each partition and peer, which stays as that pair's last proof,
    and the last report of each scheduled job; how many went."""
    newest = (
        select(func.max(reconcile_report.c.pk))
        .where(reconcile_report.c.state != RUNNING)
        .group_by(reconcile_report.c.partition_ae, reconcile_report.c.peer_ae)
    )
    shown = select(reconcile_job.c.last_report_pk).where(
        reconcile_job.c.last_report_pk.is_not(None)
    )
    old = select(reconcile_report.c.pk).where(
        reconcile_report.c.state != RUNNING,
        reconcile_report.c.finished_at < before,
        reconcile_report.c.pk.not_in(newest),
        reconcile_report.c.pk.not_in(shown),
    )
    with db.write(engine) as conn:
        conn.execute(delete(reconcile_difference).where(reconcile_difference.c.report_pk.in_(old)))
        return conn.execute(delete(reconcile_report).where(reconcile_report.c.pk.in_(old))).rowcount


def list_reports(
    engine: Engine, *, partition: str | None = None, peer: str | None = None, limit: int = 50
) -> list[Report]:
    """The newest reports first (without their differences)."""
    stmt = select(reconcile_report).order_by(reconcile_report.c.pk.desc()).limit(limit)
    if partition:
        stmt = stmt.where(reconcile_report.c.partition_ae == partition)
    if peer:
        stmt = stmt.where(reconcile_report.c.peer_ae == peer)
    with db.read(engine) as conn:
        rows = conn.execute(stmt).mappings().all()
    return [_report(r) for r in rows]


def get_report(engine: Engine, pk: int) -> Report:
    """One report with its differences, or NotFound."""
    with db.read(engine) as conn:
        row = (
            conn.execute(select(reconcile_report).where(reconcile_report.c.pk == pk))
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound(f"no reconciliation report #{pk}")
        diffs = (
            conn.execute(
                select(reconcile_difference)
                .where(reconcile_difference.c.report_pk == pk)
                .order_by(reconcile_difference.c.pk)
            )
            .mappings()
            .all()
        )
    report = _report(row)
    report.found = [_difference(d) for d in diffs if d["pass_no"] == 1]
    report.left = [_difference(d) for d in diffs if d["pass_no"] == 2]
    if report.passes < 2:
        report.left = [d for d in report.found if d.repair != "fetched" and d.repair != "pushed"]
    return report


def _key(d: Difference) -> tuple[str, str, str, str, str]:
    return (d.side, d.level, d.study, d.series, d.instance)


def _row(report_pk: int, pass_no: int, d: Difference) -> dict[str, Any]:
    return {
        "report_pk": report_pk,
        "pass_no": pass_no,
        "side": d.side,
        "level": d.level,
        "study_iuid": d.study,
        "series_iuid": d.series,
        "sop_iuid": d.instance,
        "sop_cuid": d.sop_class,
        "study_date": d.date[:8],
        "instances": d.instances,
        "repair": d.repair,
        "detail": d.detail,
    }


def _difference(row: Any) -> Difference:
    return Difference(
        row["side"],
        row["level"],
        row["study_iuid"],
        row["series_iuid"],
        row["sop_iuid"],
        row["sop_cuid"],
        row["study_date"],
        int(row["instances"]),
        row["repair"],
        row["detail"],
    )


def _report(row: Any) -> Report:
    return Report(
        pk=int(row["pk"]),
        partition=row["partition_ae"],
        peer=row["peer_ae"],
        date_from=row["date_from"],
        date_to=row["date_to"],
        direction=row["direction"],
        reason=row["reason"],
        state=row["state"],
        started_at=utc(row["started_at"]),  # type: ignore[arg-type]
        finished_at=utc(row["finished_at"]),
        local_studies=int(row["local_studies"]),
        local_instances=int(row["local_instances"]),
        peer_studies=int(row["peer_studies"]),
        peer_instances=int(row["peer_instances"]),
        missing=int(row["missing"]),
        extra=int(row["extra"]),
        fetched=int(row["fetched"]),
        pushed=int(row["pushed"]),
        missing_left=int(row["missing_left"]),
        extra_left=int(row["extra_left"]),
        passes=int(row["passes"]),
        days=json.loads(row["days"] or "[]"),
        notes=json.loads(row["notes"] or "[]"),
        error=row["error"] or "",
    )
