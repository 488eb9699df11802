"""ServiceLock: one row per service; a node runs a due service only while it holds its lock."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, or_, select, update

from hounsfield.audit.config import config_changed
from hounsfield.db import engine as db
from hounsfield.db.tables import service
from hounsfield.db.upsert import get_or_insert
from hounsfield.errors import NotFound
from hounsfield.workqueue.items import now, utc


@dataclass(frozen=True)
class ServiceRow:
    """A service as listed."""

    name: str
    enabled: bool
    interval_seconds: int
    next_run_at: datetime
    locked_by: str | None
    locked_until: datetime | None
    last_run_at: datetime | None
    last_result: str
    state: dict[str, Any]

    @property
    def locked(self) -> bool:
        """True while a node holds the lock."""
        return self.locked_until is not None and self.locked_until > now()


def ensure(engine: Engine, name: str, interval_seconds: int, enabled: bool) -> None:
    """Create a service row with its defaults unless it exists (operators' changes stay)."""
    with db.write(engine) as conn:
        get_or_insert(
            conn,
            service,
            {"name": name},
            {
                "enabled": enabled,
                "interval_seconds": interval_seconds,
                "next_run_at": now(),
                "last_result": "",
                "state": "{}",
            },
        )


def list_services(engine: Engine) -> list[ServiceRow]:
    """Every service by name."""
    with db.read(engine) as conn:
        rows = conn.execute(select(service).order_by(service.c.name)).mappings().all()
    return [
        ServiceRow(
            name=r["name"],
            enabled=r["enabled"],
            interval_seconds=r["interval_seconds"],
            next_run_at=utc(r["next_run_at"]),  # type: ignore[arg-type]
            locked_by=r["locked_by"],
            locked_until=utc(r["locked_until"]),
            last_run_at=utc(r["last_run_at"]),
            last_result=r["last_result"],
            state=json.loads(r["state"] or "{}"),
        )
        for r in rows
    ]


def get_service(engine: Engine, name: str) -> ServiceRow:
    """One service, or NotFound."""
    for row in list_services(engine):
        if row.name == name:
            return row
    raise NotFound(f"no service named {name!r}")


def acquire(engine: Engine, name: str, node: str, lease: timedelta, *, force: bool) -> bool:
    """Take the lock of a due, enabled service (or any service, forced); True if taken."""
    current = now()
    free = or_(service.c.locked_until.is_(None), service.c.locked_until < current)
    cond = [service.c.name == name, free]
    if not force:
        cond += [service.c.enabled, service.c.next_run_at <= current]
    with db.write(engine) as conn:
        return bool(
            conn.execute(
                update(service)
                .where(*cond)
                .values(locked_by=node[:64], locked_until=current + lease)
            ).rowcount
        )


def save_state(
    engine: Engine, name: str, node: str, state: dict[str, Any], lease: timedelta
) -> None:
    """Record a running service's progress (so it resumes after a crash) and extend its lock."""
    with db.write(engine) as conn:
        conn.execute(
            update(service)
            .where(service.c.name == name, service.c.locked_by == node[:64])
            .values(state=json.dumps(state, sort_keys=True), locked_until=now() + lease)
        )


def release(
    engine: Engine,
    name: str,
    node: str,
    result: str,
    *,
    state: dict[str, Any] | None = None,
    disable: bool = False,
) -> None:
    """Finish a run: record its result, schedule the next run, drop the lock."""
    current = now()
    values: dict[str, Any] = {
        "locked_by": None,
        "locked_until": None,
        "last_run_at": current,
        "last_result": result[:4000],
    }
    if state is not None:
        values["state"] = json.dumps(state, sort_keys=True)
    if disable:
        values["enabled"] = False
    with db.write(engine) as conn:
        interval = conn.scalar(select(service.c.interval_seconds).where(service.c.name == name))
        values["next_run_at"] = current + timedelta(seconds=interval or 0)
        conn.execute(
            update(service)
            .where(service.c.name == name, service.c.locked_by == node[:64])
            .values(**values)
        )


def configure(
    engine: Engine, name: str, *, enabled: bool | None = None, interval_seconds: int | None = None
) -> ServiceRow:
    """Enable, disable or reschedule a service."""
    values: dict[str, Any] = {}
    if enabled is not None:
        values["enabled"] = enabled
        if enabled:
            values["next_run_at"] = now()
    if interval_seconds is not None:
        values["interval_seconds"] = interval_seconds
    with db.write(engine) as conn:
        if not conn.execute(
            update(service).where(service.c.name == name).values(**values)
        ).rowcount:
            raise NotFound(f"no service named {name!r}")
    said = ", ".join(f"{k}={v}" for k, v in values.items() if k != "next_run_at")
    config_changed(engine, f"service {name}: {said}")
    return get_service(engine, name)
