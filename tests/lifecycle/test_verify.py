"""Storage verification: bad and missing files are found, alerted and repaired from a good copy
(the mirror's, or another tier's); by hand (function, CLI, admin API) and as a scheduled
service that resumes where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from hounsfield.alerts import list_alerts
from hounsfield.archive.context import Archive
from hounsfield.cli import app
from hounsfield.db import engine as db
from hounsfield.db.tables import study
from hounsfield.errors import InvalidUID, NotFound
from hounsfield.lifecycle.archive_copy import copy_to_tier
from hounsfield.lifecycle.verify import verify_storage
from hounsfield.scheduled import lock, verification
from hounsfield.scheduled.scheduler import LEASE, ensure_services, run_service
from hounsfield.storage.tiers import add_filesystem, list_filesystems
from hounsfield.web.app import create_app
from hounsfield.workers.runner import Worker
from hounsfield.workqueue import admin
from tests.conftest import make_archive, make_settings
from tests.mirror_helpers import add_mirror, flip_bytes, rows_of
from tests.storage_helpers import store_study

NAMES = ["CT_small.dcm", "MR_small.dcm", "emri_small.dcm"]


def _messages(archive: Archive) -> list[str]:
    return [a.message for a in list_alerts(archive.engine)]


def test_good_files_are_marked_verified(archive: Archive, tmp_path: Path) -> None:
    mirror = add_mirror(archive, tmp_path / "mirror")
    stored = store_study(archive, "all-good", NAMES)
    report = verify_storage(archive)
    assert (report.checked, report.good, report.bad, report.missing) == (6, 6, 0, 0)
    assert report.problems == [] and _messages(archive) == []
    for s in stored:
        rows = rows_of(archive, s.sop_instance)
        assert all(r.verified_at is not None for r in rows.values()) and mirror in rows


def test_a_damaged_mirror_copy_is_repaired_from_the_primary(
    archive: Archive, tmp_path: Path
) -> None:
    mirror = add_mirror(archive, tmp_path / "mirror")
    first, second, _third = store_study(archive, "damaged-mirror", NAMES)
    bad = rows_of(archive, first.sop_instance)[mirror]
    flip_bytes(bad.file, at=200)
    gone = rows_of(archive, second.sop_instance)[mirror]
    gone.file.unlink()
    report = verify_storage(archive, filesystem_path=mirror)
    assert (report.checked, report.bad, report.missing, report.repaired) == (3, 1, 1, 2)
    assert bad.intact() and gone.intact()
    assert sum("repaired from" in m for m in _messages(archive)) == 2


def test_without_a_good_copy_a_file_is_unrepairable(archive: Archive) -> None:
    (s,) = store_study(archive, "unmirrored", ["CT_small.dcm"])
    (row,) = rows_of(archive, s.sop_instance).values()
    flip_bytes(row.file)
    report = verify_storage(archive, study_uid=s.study)
    assert (report.checked, report.bad, report.repaired, report.unrepairable) == (1, 1, 0, 1)
    assert report.problems == [f"{row.file}: bad, unrepairable"]
    (alert,) = list_alerts(archive.engine)
    assert (
        alert.level == "error"
        and "no good copy" in alert.message
        and s.sop_instance in alert.message
    )
    assert rows_of(archive, s.sop_instance)[row.root].verified_at is None


def test_a_tier_copy_repairs_when_there_is_no_mirror(archive: Archive, tmp_path: Path) -> None:
    add_filesystem(archive.engine, tmp_path / "t3", tier=3, capacity_bytes=10**8)
    (s,) = store_study(archive, "tier-copy", ["MR_small.dcm"])
    primary = rows_of(archive, s.sop_instance)[archive.settings.storage_dir.resolve()]
    study_pk = next(iter(_study_pks(archive)))
    assert copy_to_tier(archive, study_pk, 3).files == 1
    primary.file.unlink()
    report = verify_storage(archive, filesystem_path=archive.settings.storage_dir)
    assert (report.checked, report.missing, report.repaired) == (1, 1, 1)
    assert primary.intact()


def test_an_unreachable_filesystem_is_reported_not_repaired(
    archive: Archive, tmp_path: Path
) -> None:
    mirror = add_mirror(archive, tmp_path / "mirror")
    store_study(archive, "unreachable", NAMES)
    mirror.rename(tmp_path / "unmounted")
    report = verify_storage(archive)
    assert (report.checked, report.good, report.unreachable, report.repaired) == (3, 3, 3, 0)
    assert report.unreachable_filesystems == [str(mirror)]
    assert _messages(archive) == ["verification cannot reach it"]
    assert not mirror.exists()  # nothing was written where the mount should be


def test_scope_is_checked(archive: Archive, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        verify_storage(archive, study_uid="1.2.3")
    with pytest.raises(InvalidUID):
        verify_storage(archive, study_uid="not a uid")
    with pytest.raises(NotFound):
        verify_storage(archive, filesystem_path=tmp_path / "nowhere")
    assert verify_storage(archive).checked == 0


def _study_pks(archive: Archive) -> list[int]:
    with db.read(archive.engine) as conn:
        return list(conn.scalars(select(study.c.pk).order_by(study.c.pk)))


def test_the_service_queues_ranges_per_filesystem_and_resumes(
    archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verification, "RANGE", 2)
    mirror = add_mirror(archive, tmp_path / "mirror")
    stored = store_study(archive, "scheduled", NAMES)
    ensure_services(archive)
    assert not lock.get_service(archive.engine, "storage-verification").enabled
    assert run_service(archive, "storage-verification", force=True) == (
        "queued verification of 6 files in 4 items"
    )
    assert lock.get_service(archive.engine, "storage-verification").state == {}
    flip_bytes(rows_of(archive, stored[0].sop_instance)[mirror].file)
    Worker(archive, threads=2, processes=0, kinds=["verify-files"]).run_until_idle()
    items = admin.list_items(archive.engine, kind="verify-files")
    assert {i.status for i in items} == {"completed"}
    assert sum(int(i.result.split(", ")[-2].split()[0]) for i in items) == 1  # repaired
    assert rows_of(archive, stored[0].sop_instance)[mirror].intact()

    # As if the node died after queuing the first range of the default filesystem.
    fs_pk = next(
        u.pk
        for u in list_filesystems(archive.engine)
        if u.path == str(archive.settings.storage_dir.resolve())
    )
    first = min(i.payload["through"] for i in items if i.payload["filesystem"] == fs_pk)
    lock.acquire(archive.engine, "storage-verification", "dead", LEASE, force=True)
    lock.release(archive.engine, "storage-verification", "dead", "", state={str(fs_pk): first})
    assert run_service(archive, "storage-verification", force=True) == (
        "queued verification of 4 files in 3 items"
    )


def test_cli_and_admin_api_run_the_same_verification(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    archive = make_archive(settings)
    try:
        add_mirror(archive, tmp_path / "mirror")
        ok, bad = store_study(archive, "by-hand", ["CT_small.dcm", "MR_small.dcm"])
        rows_of(archive, ok.sop_instance)[archive.settings.storage_dir.resolve()].file.unlink()
        env = {
            "HOUNSFIELD_DATA_DIR": str(settings.data_dir),
            "HOUNSFIELD_DATABASE_URL": database_url,
        }
        out = CliRunner().invoke(app, ["verify", "--study", ok.study, "--json"], env=env)
        assert out.exit_code == 0, out.output
        (report,) = json.loads(out.output)
        assert (report["checked"], report["missing"], report["repaired"]) == (4, 1, 1)
        out = CliRunner().invoke(app, ["verify", "--filesystem", str(tmp_path / "mirror")], env=env)
        assert out.exit_code == 0 and "checked" in out.output, out.output

        for row in rows_of(archive, bad.sop_instance).values():
            flip_bytes(row.file)  # both copies: nothing to repair from
        client = TestClient(create_app(archive))
        answer = client.post("/admin/verify", json={"study": bad.study})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["checked"], body["bad"], body["unrepairable"]) == (4, 2, 2)
        assert client.post("/admin/verify", json={"study": "1.2.3"}).status_code == 404
        assert client.post("/admin/verify").json()["checked"] == 4
        schema = client.get("/openapi.json").json()
        assert (
            "/admin/verify" in schema["paths"] and "VerifyResult" in schema["components"]["schemas"]
        )
        out = CliRunner().invoke(app, ["verify"], env=env)
        assert out.exit_code == 1 and "unrepairable" in out.output, out.output
    finally:
        archive.close()
