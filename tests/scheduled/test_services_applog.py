"""Archive Application Log and alert archives: database records, one zip per day, retention."""

from __future__ import annotations

import logging
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from hounsfield.alerts import list_alerts, raise_alert
from hounsfield.db import engine as db
from hounsfield.db.tables import alert, app_log
from hounsfield.scheduled.applog import DatabaseLogHandler
from hounsfield.scheduled.scheduler import ensure_services, run_service
from hounsfield.storage.tiers import add_filesystem
from tests.conftest import make_archive, make_settings


def test_handler_keeps_warnings_and_queue_events(tmp_path: Path, database_url: str) -> None:
    archive = make_archive(make_settings(tmp_path, database_url, node_name="node-a"))
    handler = DatabaseLogHandler(archive.engine, "node-a")
    try:
        for name, level, text in (
            ("hounsfield.archive.store", logging.WARNING, "disk nearly full"),
            ("hounsfield.workers.runner", logging.INFO, "item 7 done"),
            ("hounsfield.archive.store", logging.INFO, "stored one"),
        ):
            handler.handle(logging.LogRecord(name, level, __file__, 1, text, None, None))
    finally:
        handler.close()
        with db.read(archive.engine) as conn:
            rows = conn.execute(select(app_log.c.level, app_log.c.node, app_log.c.message)).all()
        archive.close()
    assert sorted(rows) == [
        ("INFO", "node-a", "item 7 done"),
        ("WARNING", "node-a", "disk nearly full"),
    ]


def _log(archive, when: datetime, message: str) -> None:  # type: ignore[no-untyped-def]
    with db.write(archive.engine) as conn:
        conn.execute(
            app_log.insert().values(
                level="WARNING",
                logger="hounsfield.test",
                node="n",
                message=message,
                created_at=when,
            )
        )


def test_application_log_is_archived_per_day_on_the_lowest_tier(
    tmp_path: Path, database_url: str
) -> None:
    archive = make_archive(make_settings(tmp_path, database_url, app_log_keep_days=2))
    try:
        tier3 = tmp_path / "tier3"
        add_filesystem(archive.engine, tier3, tier=3)
        today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
        old, recent = today - timedelta(days=3), today - timedelta(days=1)
        _log(archive, old, "three days ago")
        _log(archive, old + timedelta(minutes=1), "three days ago, later")
        _log(archive, recent, "yesterday")
        _log(archive, today, "today")
        ensure_services(archive)
        result = run_service(archive, "archive-application-log", force=True)
        assert result is not None and result.startswith("archived 2 days") and "removed 2" in result
        old_zip = tier3 / "ApplicationLog" / f"{old:%Y-%m}" / f"{old:%Y-%m-%d}.zip"
        with zipfile.ZipFile(old_zip) as z:
            lines = z.read(f"{old:%Y-%m-%d}.log").decode().splitlines()
        assert [line.split(": ", 1)[1] for line in lines] == [
            "three days ago",
            "three days ago, later",
        ]
        assert (tier3 / "ApplicationLog" / f"{recent:%Y-%m}" / f"{recent:%Y-%m-%d}.zip").is_file()
        with db.read(archive.engine) as conn:
            kept = sorted(conn.scalars(select(app_log.c.message)))
        assert kept == ["today", "yesterday"]
        again = run_service(archive, "archive-application-log", force=True)
        assert again is not None and again.startswith("archived 1 days")
        with zipfile.ZipFile(
            tier3 / "ApplicationLog" / f"{recent:%Y-%m}" / f"{recent:%Y-%m-%d}.zip"
        ) as z:
            assert z.read(f"{recent:%Y-%m-%d}.log").decode().count("yesterday") == 1
    finally:
        archive.close()


def test_purged_alerts_can_be_archived_first(tmp_path: Path, database_url: str) -> None:
    archive = make_archive(
        make_settings(tmp_path, database_url, alert_keep_days=1, alert_archive=True)
    )
    try:
        raise_alert(archive.engine, "error", "storage", "fs1", "old news")
        raise_alert(archive.engine, "warning", "storage", "fs1", "fresh")
        two_days_ago = datetime.now(UTC) - timedelta(days=2)
        with db.write(archive.engine) as conn:
            conn.execute(
                alert.update().where(alert.c.message == "old news").values(created_at=two_days_ago)
            )
        ensure_services(archive)
        result = run_service(archive, "purge-alerts", force=True)
        assert result == "removed 1 alerts, archived 1 days first"
        assert [a.message for a in list_alerts(archive.engine)] == ["fresh"]
        (day_zip,) = archive.settings.storage_dir.joinpath("Alerts").rglob("*.zip")
        with zipfile.ZipFile(day_zip) as z:
            (text,) = [z.read(n).decode() for n in z.namelist()]
        assert "[storage] fs1: old news" in text and "fresh" not in text
    finally:
        archive.close()
