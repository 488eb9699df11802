"""Scheduled reconciliations: jobs per partition, peer and period, when due, what they cover."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select, update

from hounsfield.archive.context import Archive
from hounsfield.audit.config import config_changed, differs
from hounsfield.db import engine as db
from hounsfield.db.tables import reconcile_job
from hounsfield.errors import InvalidDataset, NotFound
from hounsfield.settings import ReconcileConfig
from hounsfield.sites.devices import find_device
from hounsfield.sites.reconcile_model import DEPTHS, DIRECTIONS
from hounsfield.workqueue.items import now, utc

PERIODS = ("yesterday", "last-7-days", "last-month")
_AT = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True)
class Job:
    """A scheduled reconciliation."""

    pk: int
    name: str
    partition: str
    peer: str
    period: str
    direction: str
    at: str
    enabled: bool
    next_run_at: datetime
    last_run_at: datetime | None
    last_report: int | None
    depth: str = "counts"


def covered(period: str, scheduled: datetime) -> tuple[date, date]:
    """The days a run scheduled at `scheduled` covers (the node's local dates): yesterday,
    the seven days before, or the previous calendar month."""
    today = scheduled.astimezone().date()
    if period == "yesterday":
        return today - timedelta(days=1), today - timedelta(days=1)
    if period == "last-7-days":
        return today - timedelta(days=7), today - timedelta(days=1)
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def next_run(period: str, at: str, after: datetime) -> datetime:
    """The first time after `after` the job runs: every day at `at` (local time), or on the
    1st of the month at `at` for last-month."""
    local = after.astimezone()
    hour, minute = (int(p) for p in at.split(":"))
    day = local.date()
    while True:
        candidate = datetime.combine(day, time(hour, minute)).astimezone()
        if candidate > local and (period != "last-month" or day.day == 1):
            return candidate
        day = _next_day(day, period)


def _next_day(day: date, period: str) -> date:
    if period != "last-month":
        return day + timedelta(days=1)
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def add_job(
    archive: Archive,
    name: str,
    partition: str,
    peer: str,
    *,
    period: str = "yesterday",
    direction: str = "none",
    depth: str = "counts",
    at: str = "02:00",
    enabled: bool = True,
) -> bool:
    """Add or change a job (it runs next at its time); True if it was new."""
    values = _checked(archive, name, partition, peer, period, direction, depth, at)
    values.update(enabled=enabled, next_run_at=next_run(period, at, now()))
    with db.write(archive.engine) as conn:
        row = (
            conn.execute(select(reconcile_job).where(reconcile_job.c.name == name))
            .mappings()
            .first()
        )
        if row is None:
            conn.execute(reconcile_job.insert().values(name=name, **values))
            config_changed(archive.engine, f"reconciliation job {name} added")
            return True
        conn.execute(update(reconcile_job).where(reconcile_job.c.pk == row["pk"]).values(**values))
        if differs(row, {k: v for k, v in values.items() if k != "next_run_at"}):
            config_changed(archive.engine, f"reconciliation job {name} changed")
        return False


def _checked(
    archive: Archive,
    name: str,
    partition: str,
    peer: str,
    period: str,
    direction: str,
    depth: str,
    at: str,
) -> dict[str, Any]:
    if not 0 < len(name.strip()) <= 64:
        raise InvalidDataset("a job's name is 1 to 64 characters")
    if period not in PERIODS:
        raise InvalidDataset(f"period is one of {', '.join(PERIODS)}, not {period!r}")
    if direction not in DIRECTIONS:
        raise InvalidDataset(f"direction is one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if depth not in DEPTHS:
        raise InvalidDataset(f"depth is one of {', '.join(DEPTHS)}, not {depth!r}")
    if not _AT.match(at):
        raise InvalidDataset(f"the time of day is HH:MM, not {at!r}")
    part = archive.partition(partition)
    if find_device(archive, peer) is None:
        raise NotFound(f"no device with AE title {peer!r}")
    return {
        "partition_ae": part.ae_title,
        "peer_ae": peer,
        "period": period,
        "direction": direction,
        "depth": depth,
        "at_time": at,
    }


def remove_job(engine: Engine, name: str) -> None:
    """Remove a job or raise NotFound."""
    with db.write(engine) as conn:
        if not conn.execute(delete(reconcile_job).where(reconcile_job.c.name == name)).rowcount:
            raise NotFound(f"no reconciliation job named {name!r}")
    config_changed(engine, f"reconciliation job {name} removed")


def list_jobs(engine: Engine) -> list[Job]:
    """Every job, by name."""
    with db.read(engine) as conn:
        rows = conn.execute(select(reconcile_job).order_by(reconcile_job.c.name)).mappings().all()
    return [_job(r) for r in rows]


def due_jobs(engine: Engine, at: datetime | None = None) -> list[Job]:
    """The enabled jobs due at `at` (now), the longest waiting first."""
    current = at or now()
    return sorted(
        (j for j in list_jobs(engine) if j.enabled and j.next_run_at <= current),
        key=lambda j: j.next_run_at,
    )


def job_ran(engine: Engine, job: Job, report: int | None = None) -> None:
    """Record a run of `job` (and its report, when known) and schedule its next one."""
    current = now()
    values: dict[str, Any] = {
        "last_run_at": current,
        "next_run_at": next_run(job.period, job.at, current),
    }
    if report is not None:
        values["last_report_pk"] = report
    with db.write(engine) as conn:
        conn.execute(update(reconcile_job).where(reconcile_job.c.pk == job.pk).values(**values))


def apply_declared(archive: Archive, declared: list[ReconcileConfig]) -> None:
    """Make the jobs declared in the TOML file (`[[reconcile]]`) exist as declared; a job
    whose schedule did not change keeps its next run."""
    current = {j.name: j for j in list_jobs(archive.engine)}
    for d in declared:
        old = current.get(d.name)
        same = old is not None and (
            old.partition,
            old.peer,
            old.period,
            old.direction,
            old.depth,
            old.at,
            old.enabled,
        ) == (d.partition, d.peer, d.period, d.direction, d.depth, d.at, d.enabled)
        if not same:
            add_job(
                archive,
                d.name,
                d.partition,
                d.peer,
                period=d.period,
                direction=d.direction,
                depth=d.depth,
                at=d.at,
                enabled=d.enabled,
            )


def _job(row: Any) -> Job:
    return Job(
        pk=int(row["pk"]),
        name=row["name"],
        partition=row["partition_ae"],
        peer=row["peer_ae"],
        period=row["period"],
        direction=row["direction"],
        at=row["at_time"],
        enabled=bool(row["enabled"]),
        next_run_at=utc(row["next_run_at"]),  # type: ignore[arg-type]
        last_run_at=utc(row["last_run_at"]),
        last_report=row["last_report_pk"],
        depth=row["depth"],
    )
