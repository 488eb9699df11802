"""The audit trail is archived per day to zips on the lowest tier and purged after the days
to keep; `hounsfield audit list` filters it; alike events close together are one record."""

from __future__ import annotations

import json
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from hounsfield.audit import trail
from hounsfield.audit.events import Actor
from hounsfield.db import engine as db
from hounsfield.db.tables import audit_event
from hounsfield.scheduled.scheduler import ensure_services, run_service
from hounsfield.storage.tiers import add_filesystem
from tests.conftest import make_archive, make_settings
from tests.livenode import cli, node_env


def _at(archive: object, when: datetime, detail: str) -> None:
    with db.write(archive.engine) as conn:  # type: ignore[attr-defined]
        conn.execute(
            audit_event.insert().values(
                created_at=when,
                event="config",
                outcome=0,
                user_name="root",
                ae_title="",
                remote_host="",
                called="",
                protocol="CLI",
                partition="",
                patient_id="",
                patient_name="",
                study_iuid="",
                count=0,
                detail=detail,
                node="n1",
            )
        )


def test_days_are_archived_then_purged(tmp_path: Path, database_url: str) -> None:
    archive = make_archive(make_settings(tmp_path, database_url, audit_keep_days=30))
    try:
        tier2 = tmp_path / "tier2"
        add_filesystem(archive.engine, tier2, tier=2)
        today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
        old, recent = today - timedelta(days=40), today - timedelta(days=2)
        _at(archive, old, "long ago")
        _at(archive, recent, "two days ago")
        ensure_services(archive)
        result = run_service(archive, "archive-audit-trail", force=True)
        assert result is not None and "archived 2 days" in result and "removed 1" in result
        day_zip = tier2 / "AuditTrail" / f"{old:%Y-%m}" / f"{old:%Y-%m-%d}.zip"
        with zipfile.ZipFile(day_zip) as z:
            [line] = z.read(f"{old:%Y-%m-%d}.log").decode().splitlines()
        kept = json.loads(line)
        assert kept["detail"] == "long ago" and kept["user_name"] == "root"
        assert kept["created_at"].startswith(f"{old:%Y-%m-%d}T12:00")
        with db.read(archive.engine) as conn:
            left = list(
                conn.scalars(select(audit_event.c.detail).where(audit_event.c.event == "config"))
            )
        assert "long ago" not in left and "two days ago" in left
    finally:
        archive.close()


def test_alike_events_within_the_window_are_one_record(tmp_path: Path) -> None:
    archive = make_archive(
        make_settings(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", audit_coalesce_seconds=0.3)
    )
    try:
        who = Actor("CT1", "DICOM", host="10.0.0.1", ae_title="CT1")
        for _ in range(5):
            trail.record(
                archive.engine, "store", actor=who, coalesce=True, count=1, study_uid="1.2"
            )
        time.sleep(0.35)  # the window closes: what follows is a new record
        trail.trail_of(archive.engine).flush()
        trail.record(archive.engine, "store", actor=who, coalesce=True, count=1, study_uid="1.2")
        trail.record(archive.engine, "store", actor=who, coalesce=True, count=1, study_uid="1.3")
        trail.flush(archive.engine)
        with db.read(archive.engine) as conn:
            rows = conn.execute(
                select(audit_event.c.study_iuid, audit_event.c.count).order_by(audit_event.c.pk)
            ).all()
        assert [tuple(r) for r in rows] == [("1.2", 5), ("1.2", 1), ("1.3", 1)]
    finally:
        archive.close()


def test_cli_lists_filters_and_records_its_own_changes(tmp_path: Path) -> None:
    env = node_env(tmp_path / "node", f"sqlite:///{tmp_path / 'a.db'}")
    assert cli(env, "db", "upgrade").returncode == 0
    added = cli(env, "device", "add", "PACS", "10.0.0.9", "104")
    assert added.returncode == 0, added.stderr
    listed = cli(env, "audit", "list", "--event", "config", "--json")
    assert listed.returncode == 0, listed.stderr
    [change] = json.loads(listed.stdout)
    assert change["detail"] == "device PACS added" and change["protocol"] == "CLI"
    assert change["user"] and change["host"] == "localhost"
    reads = json.loads(cli(env, "audit", "list", "--event", "audit-read", "--json").stdout)
    assert reads and reads[0]["detail"] == "event=config, limit=100"
    assert cli(env, "audit", "list", "--event", "nonsense").returncode != 0
    assert cli(env, "audit", "list", "--since", "7d", "--failures").returncode == 0


def test_records_wait_for_a_database_that_is_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = make_archive(make_settings(tmp_path, f"sqlite:///{tmp_path / 'a.db'}"))
    monkeypatch.setattr(trail, "RETRY_SECONDS", 0.2)
    try:
        with archive.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE audit_event RENAME TO audit_event_away")
        writer = trail.trail_of(archive.engine)
        trail.record(archive.engine, "login", actor=Actor("rad", "HTTP"), detail="held")
        assert writer.flush() == 0  # the table is away: the record is held
        assert writer._queue  # held for the next try
        with archive.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE audit_event_away RENAME TO audit_event")
        assert writer.flush() == 0  # back, but not tried again before RETRY_SECONDS
        time.sleep(0.25)
        writer.flush()  # (or the writer's own thread did, a moment before)
        with db.read(archive.engine) as conn:
            assert list(conn.scalars(select(audit_event.c.detail))) == ["held"]
    finally:
        archive.close()


def test_a_record_the_database_refuses_holds_up_no_other(
    tmp_path: Path, postgresql_url: str
) -> None:
    archive = make_archive(make_settings(tmp_path, postgresql_url))
    try:
        who = Actor("CT1", "DICOM")
        trail.record(archive.engine, "store", actor=who, patient_id="P\x001", detail="NUL")
        trail.record(archive.engine, "store", actor=who, count=2**40, detail="too many")
        trail.record(archive.engine, "store", actor=who, count=1, detail="fine")
        trail.flush(archive.engine)
        with db.read(archive.engine) as conn:
            rows = conn.execute(
                select(audit_event.c.detail, audit_event.c.patient_id).order_by(audit_event.c.pk)
            ).all()
        assert [tuple(r) for r in rows] == [("NUL", "P1"), ("fine", "")]
    finally:
        archive.close()
