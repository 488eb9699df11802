"""Scheduled services: ServiceLock across nodes, reinventory, import folder, housekeeping."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, func, select

from hounsfield.alerts import list_alerts, raise_alert
from hounsfield.archive.context import Archive, open_archive
from hounsfield.db import engine as db
from hounsfield.db.tables import file, instance, patient, series, study, study_outcome
from hounsfield.scheduled import lock
from hounsfield.scheduled.folders import incoming_folder
from hounsfield.scheduled.scheduler import LEASE, Scheduler, ensure_services, run_service
from hounsfield.workers.runner import Worker
from hounsfield.workqueue import admin
from tests.conftest import make_archive, make_settings
from tests.data import local
from tests.storage_helpers import part10_variant, store_variant


def test_service_lock_lets_one_node_run_a_service(archive: Archive) -> None:
    ensure_services(archive)
    engine = archive.engine
    name = "purge-alerts"
    assert lock.acquire(engine, name, "node-a", LEASE, force=False)
    assert not lock.acquire(engine, name, "node-b", LEASE, force=False)
    assert not lock.acquire(engine, name, "node-b", LEASE, force=True)  # held: even forced
    assert lock.get_service(engine, name).locked
    lock.release(engine, name, "node-a", "done")
    row = lock.get_service(engine, name)
    assert not row.locked and row.last_result == "done"
    assert row.next_run_at > row.last_run_at + timedelta(hours=23)  # type: ignore[operator]
    assert not lock.acquire(engine, name, "node-b", LEASE, force=False)  # not due
    assert lock.acquire(engine, name, "node-b", LEASE, force=True)


def test_scheduler_runs_due_enabled_services_once(tmp_path: Path, database_url: str) -> None:
    a = make_archive(make_settings(tmp_path, database_url, node_name="node-a"))
    b = open_archive(make_settings(tmp_path, database_url, node_name="node-b"))
    try:
        first = Scheduler(a)
        ensure_services(a)
        ran = first.run_due()
        assert "filesystem-watermark-check" in ran and "purge-work-items" in ran
        assert "filesystem-reinventory" not in ran  # disabled by default
        assert Scheduler(b).run_due() == {}  # nothing due any more, on any node
        lock.configure(a.engine, "filesystem-watermark-check", enabled=False)
        lock.configure(a.engine, "filesystem-watermark-check", enabled=True)
        assert list(Scheduler(b).run_due()) == ["filesystem-watermark-check"]
        rows = {r.name: r for r in lock.list_services(a.engine)}
        assert all(not r.locked for r in rows.values())
    finally:
        a.close()
        b.close()


def _counts(archive: Archive) -> dict[str, int]:
    with db.read(archive.engine) as conn:
        return {
            t.name: conn.scalar(select(func.count()).select_from(t)) or 0
            for t in (patient, study, series, instance, file)
        }


def _empty_index(archive: Archive) -> None:
    with db.write(archive.engine) as conn:
        for table in (study_outcome, file, instance, series, study, patient):
            conn.execute(delete(table))


def test_reinventory_rebuilds_an_emptied_index(archive: Archive) -> None:
    stored = [
        store_variant(archive, name, n)
        for name in ("CT_small.dcm", "MR_small.dcm")
        for n in range(3)
    ]
    stored.append(store_variant(archive, "emri_small.dcm", 1))
    before = _counts(archive)
    with db.read(archive.engine) as conn:
        checksums = dict(conn.execute(select(file.c.path, file.c.checksum)).all())
    Worker(archive, threads=1, processes=0).run_until_idle()
    _empty_index(archive)
    assert _counts(archive)["instance"] == 0
    ensure_services(archive)
    lock.configure(archive.engine, "filesystem-reinventory", enabled=True)
    result = Scheduler(archive).run_due()["filesystem-reinventory"]
    assert result == "queued 7 study folders"
    assert not lock.get_service(archive.engine, "filesystem-reinventory").enabled
    Worker(archive, threads=2, processes=0).run_until_idle()
    assert _counts(archive) == before
    with db.read(archive.engine) as conn:
        assert dict(conn.execute(select(file.c.path, file.c.checksum)).all()) == checksums
    # A second run finds everything known and changes nothing.
    assert run_service(archive, "filesystem-reinventory", force=True) == "queued 7 study folders"
    Worker(archive, threads=2, processes=0).run_until_idle()
    assert _counts(archive) == before
    results = [i.result for i in admin.list_items(archive.engine, kind="reinventory-study")]
    assert results.count("indexed 0, known 1, refused 0, removed 0") == 7


def test_reinventory_resumes_after_the_last_folder_queued(archive: Archive) -> None:
    for n in range(4):
        store_variant(archive, "MR_small.dcm", n)
    ensure_services(archive)
    assert run_service(archive, "filesystem-reinventory", force=True) == "queued 4 study folders"
    items = admin.list_items(archive.engine, kind="reinventory-study")
    folders = sorted(i.payload["folder"] for i in items)
    fs_pk = items[0].payload["filesystem"]
    for item in items:
        admin.cancel(archive.engine, item.pk)
    # As if the node died after queuing the first two folders.
    lock.acquire(archive.engine, "filesystem-reinventory", "dead", LEASE, force=True)
    lock.release(
        archive.engine, "filesystem-reinventory", "dead", "", state={str(fs_pk): folders[1]}
    )
    assert run_service(archive, "filesystem-reinventory", force=True) == "queued 2 study folders"
    pending = admin.list_items(archive.engine, kind="reinventory-study", status="pending")
    assert sorted(i.payload["folder"] for i in pending) == folders[2:]
    assert lock.get_service(archive.engine, "filesystem-reinventory").state == {}


def test_import_folder_stores_good_files_and_quarantines_bad_ones(
    tmp_path: Path, database_url: str
) -> None:
    archive = make_archive(make_settings(tmp_path, database_url, import_settle_seconds=0))
    try:
        incoming = incoming_folder(archive.settings.storage_dir, archive.settings.ae_title)
        (incoming / "batch").mkdir(parents=True)
        (incoming / "batch" / "good.dcm").write_bytes(part10_variant("CT_small.dcm", 7))
        shutil.copy(local("rtdose.dcm"), incoming / "rtdose.dcm")
        (incoming / "notes.txt").write_text("not DICOM")
        ensure_services(archive)
        assert run_service(archive, "import-files", force=True) == "queued 3 files"
        assert run_service(archive, "import-files", force=True) == "queued 0 files"  # coalesced
        Worker(archive, threads=2, processes=0).run_until_idle()
        assert _counts(archive)["instance"] == 2
        remaining = sorted(p.name for p in incoming.rglob("*") if p.is_file())
        assert remaining == []
        quarantine = archive.settings.storage_dir / f"{archive.settings.ae_title}_Quarantine"
        assert sorted(p.name for p in quarantine.iterdir()) == ["notes.txt", "notes.txt.reason.txt"]
        assert "DICM" in (quarantine / "notes.txt.reason.txt").read_text()
    finally:
        archive.close()


def test_housekeeping_purges_old_items_and_alerts(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        queue_keep_completed_hours=0,
        alert_keep_days=0,
        study_settle_seconds=0,
    )
    archive = make_archive(settings)
    try:
        store_variant(archive, "MR_small.dcm", 1)
        assert Worker(archive, threads=1, processes=0).run_until_idle() == 1
        raise_alert(archive.engine, "warning", "test", "here", "something")
        ensure_services(archive)
        assert (
            run_service(archive, "purge-work-items", force=True) == "removed 1 finished work items"
        )
        assert run_service(archive, "purge-alerts", force=True) == "removed 1 alerts"
        assert list_alerts(archive.engine) == []
    finally:
        archive.close()


def test_reinventory_sweeps_leftover_temporary_files(archive: Archive) -> None:
    """A write killed before its rename leaves `.<name>.<id>.tmp`: reinventory removes it once
    it is an hour old, and leaves a fresh one (a write that may still be running) alone."""
    import os
    import time

    from hounsfield.lifecycle.reinventory import reinventory_study

    store_variant(archive, "CT_small.dcm", 0)
    with db.read(archive.engine) as conn:
        fs_pk, rel = conn.execute(select(file.c.filesystem_pk, file.c.path)).one()
    stored = archive.settings.storage_dir.resolve() / rel
    stale = stored.with_name(f".{stored.name}.0123abcd.tmp")
    fresh = stored.with_name(f".{stored.name}.4567ef01.tmp")
    stale.write_bytes(b"half a file")
    fresh.write_bytes(b"being written")
    hour_ago = time.time() - 3700
    os.utime(stale, (hour_ago, hour_ago))
    folder = "/".join(rel.split("/")[:3])
    # A node killed between renaming its file into place and indexing it, while another
    # write of the same object won: the leftover goes once it is an hour old.
    leftover = stored.with_name(stored.name.replace(".dcm", "_0ldwr1te.dcm"))
    young = stored.with_name(stored.name.replace(".dcm", "_y0ungwr1.dcm"))
    leftover.write_bytes(stored.read_bytes())
    young.write_bytes(stored.read_bytes())
    os.utime(leftover, (hour_ago, hour_ago))
    result = reinventory_study(archive, fs_pk, folder)
    assert (result.indexed, result.known, result.refused, result.removed) == (0, 1, 0, 1)
    assert not stale.exists() and fresh.exists() and stored.exists()
    assert not leftover.exists() and young.exists()
