"""Alerts for operators: stored in the database, logged as they are raised."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, select

from hounsfield.db import engine as db
from hounsfield.db.tables import alert

log = logging.getLogger(__name__)
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


@dataclass(frozen=True)
class Alert:
    """One alert as listed."""

    pk: int
    level: str
    category: str
    source: str
    message: str
    created_at: datetime


def raise_alert(engine: Engine, level: str, category: str, source: str, message: str) -> None:
    """Record an alert and log it; a database outage only leaves the log line."""
    log.log(_LEVELS.get(level, logging.WARNING), "alert [%s] %s: %s", category, source, message)
    try:
        with db.write(engine) as conn:
            conn.execute(
                alert.insert().values(
                    level=level,
                    category=category,
                    source=source[:128],
                    message=message,
                    created_at=datetime.now(UTC),
                )
            )
    except Exception:
        log.exception("alert could not be stored")


def list_alerts(engine: Engine, limit: int = 100) -> list[Alert]:
    """The newest alerts first."""
    with db.read(engine) as conn:
        rows = conn.execute(select(alert).order_by(alert.c.pk.desc()).limit(limit)).all()
    return [Alert(*row) for row in rows]


def purge_alerts(engine: Engine, before: datetime) -> int:
    """Remove alerts raised before `before`; how many went."""
    with db.write(engine) as conn:
        return conn.execute(delete(alert).where(alert.c.created_at < before)).rowcount
