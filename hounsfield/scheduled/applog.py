"""The application log in the database, and day archives (one zip per day, a folder per month)."""

from __future__ import annotations

import logging
import queue
import threading
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from io import BytesIO
from pathlib import Path

from sqlalchemy import Engine, RowMapping, Table, delete, func, select

from hounsfield.db import engine as db
from hounsfield.db.tables import alert, app_log
from hounsfield.scheduled.registry import Run, service
from hounsfield.storage.atomic import write_atomic
from hounsfield.storage.tiers import list_filesystems
from hounsfield.workqueue.items import now, utc

# Events of these loggers are kept from INFO up; everything else from WARNING up.
EVENT_LOGGERS = (
    "hounsfield.workqueue",
    "hounsfield.workers",
    "hounsfield.scheduled",
    "hounsfield.alerts",
)
FLUSH_SECONDS = 1.0


@dataclass(frozen=True)
class LogLine:
    """One line of the application log."""

    level: str
    logger: str
    node: str
    message: str
    created_at: datetime


def log_lines(
    engine: Engine, *, level: str | None = None, node: str | None = None, limit: int = 200
) -> list[LogLine]:
    """The newest lines of the application log first, of one level or node when given."""
    stmt = select(app_log).order_by(app_log.c.pk.desc()).limit(limit)
    if level:
        stmt = stmt.where(app_log.c.level == level.upper())
    if node:
        stmt = stmt.where(app_log.c.node == node)
    with db.read(engine) as conn:
        rows = conn.execute(stmt).mappings().all()
    return [
        LogLine(r["level"], r["logger"], r["node"], r["message"], utc(r["created_at"]))  # type: ignore[arg-type]
        for r in rows
    ]


class DatabaseLogHandler(logging.Handler):
    """Queues log records and writes them to the app_log table from its own thread, so that
    logging never waits for the database."""

    def __init__(self, engine: Engine, node: str) -> None:
        super().__init__(logging.INFO)
        self.engine = engine
        self.node = node[:64]
        self._queue: queue.SimpleQueue[dict[str, object] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._flush_loop, name="applog", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        if threading.current_thread() is self._thread:
            return  # the writer's own troubles go to the other handlers only
        if record.levelno < logging.WARNING and not record.name.startswith(EVENT_LOGGERS):
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:
            self.handleError(record)
            return
        self._queue.put(
            {
                "level": record.levelname[:16],
                "logger": record.name[:128],
                "node": self.node,
                "message": message,
                "created_at": datetime.fromtimestamp(record.created, UTC),
            }
        )

    def _flush_loop(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            while not self._queue.empty():
                batch.append(self._queue.get())
            rows = [r for r in batch if r is not None]
            if rows:
                try:
                    with db.write(self.engine) as conn:
                        conn.execute(app_log.insert(), rows)
                except Exception:
                    logging.getLogger(__name__).exception("application log not stored")
            if None in batch:
                return
            threading.Event().wait(FLUSH_SECONDS)

    def close(self) -> None:
        """Write what is queued, then stop the writer."""
        self._queue.put(None)
        self._thread.join(10)
        super().close()


def archive_folder(engine: Engine, name: str) -> Path:
    """`<the lowest tier's first filesystem>/<name>`: where day archives go."""
    usable = [u for u in list_filesystems(engine) if u.enabled and not u.read_only]
    lowest = max(usable, key=lambda u: (u.tier, -u.pk))
    return Path(lowest.path) / name


def archive_day(folder: Path, day: date, lines: Iterable[str], fsync: bool = True) -> Path:
    """Add `lines` to the day's zip (`<folder>/<YYYY-MM>/<YYYY-MM-DD>.zip`), keeping what an
    earlier run put there; the zip is replaced atomically."""
    target = folder / f"{day:%Y-%m}" / f"{day:%Y-%m-%d}.zip"
    entry = f"{day:%Y-%m-%d}.log"
    kept: list[str] = []
    if target.exists():
        with zipfile.ZipFile(target) as old:
            kept = old.read(entry).decode().splitlines()
    merged = list(dict.fromkeys([*kept, *lines]))
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as new:
        new.writestr(entry, "\n".join(merged) + "\n")
    write_atomic(target, [buf.getvalue()], fsync=fsync)
    return target


def days_before(engine: Engine, table: Table, before: datetime) -> list[date]:
    """The days from the oldest row of `table` up to `before`."""
    with db.read(engine) as conn:
        oldest = conn.scalar(select(func.min(table.c.created_at)))
    oldest = utc(oldest)
    if oldest is None or oldest >= before:
        return []
    day, out = oldest.date(), []
    while datetime.combine(day, datetime.min.time(), UTC) < before:
        out.append(day)
        day += timedelta(days=1)
    return out


def day_range(day: date) -> tuple[datetime, datetime]:
    """The UTC start and end of `day`."""
    start = datetime.combine(day, datetime.min.time(), UTC)
    return start, start + timedelta(days=1)


def archive_table(
    run: Run, table: Table, name: str, keep_days: float, line: Callable[[RowMapping], str]
) -> str:
    """Archive each finished day of `table` (one `line` per row, by created_at) to day zips
    under `name` on the lowest tier; remove from the database the days before the last
    `keep_days`, archived first."""
    engine = run.archive.engine
    today = datetime.combine(now().date(), datetime.min.time(), UTC)
    keep_from = today - timedelta(days=keep_days)
    folder = archive_folder(engine, name)
    created = table.c.created_at
    archived = removed = 0
    for day in days_before(engine, table, today):
        start, end = day_range(day)
        with db.read(engine) as conn:
            rows = conn.execute(
                select(table).where(created >= start, created < end).order_by(created, table.c.pk)
            ).mappings()
            lines = [line(r) for r in rows]
        if lines:
            archive_day(folder, day, lines, run.archive.settings.fsync)
            archived += 1
        if end <= keep_from:
            with db.write(engine) as conn:
                removed += conn.execute(
                    delete(table).where(created >= start, created < end)
                ).rowcount
    return f"archived {archived} days to {folder}, removed {removed} records"


def _log_line(r: RowMapping) -> str:
    return (
        f"{utc(r['created_at']):%Y-%m-%dT%H:%M:%S.%fZ} {r['level']} {r['node']} "
        f"{r['logger']}: {r['message']}"
    )


@service("archive-application-log", interval_seconds=86400)
def archive_application_log(run: Run) -> str:
    """Archive each finished day of the application log to a zip on the lowest tier; remove
    from the database what is older than the days to keep."""
    keep = run.archive.settings.app_log_keep_days
    return archive_table(run, app_log, "ApplicationLog", keep, _log_line)


def archive_alerts(run: Run, before: datetime) -> int:
    """Write the alerts raised before `before` to day zips under `Alerts` on the lowest tier."""
    engine = run.archive.engine
    folder = archive_folder(engine, "Alerts")
    days = 0
    for day in days_before(engine, alert, before):
        start, end = day_range(day)
        with db.read(engine) as conn:
            rows = conn.execute(
                select(alert)
                .where(alert.c.created_at >= start, alert.c.created_at < min(end, before))
                .order_by(alert.c.created_at, alert.c.pk)
            ).mappings()
            lines = [
                f"{utc(r['created_at']):%Y-%m-%dT%H:%M:%S.%fZ} {r['level']} [{r['category']}] "  # type: ignore[str-format]
                f"{r['source']}: {r['message']}"
                for r in rows
            ]
        if lines:
            archive_day(folder, day, lines, run.archive.settings.fsync)
            days += 1
    return days
