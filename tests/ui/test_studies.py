"""The study search, the study page and its actions, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from hounsfield.archive.context import Archive
from hounsfield.archive.store import StoreResult
from hounsfield.sites.devices import Device, add_device
from hounsfield.storage.tiers import add_filesystem, list_filesystems
from hounsfield.workers.runner import Worker
from hounsfield.workqueue import admin
from tests.ui.conftest import htmx


def _page(stored: StoreResult, archive: Archive) -> str:
    return f"/ui/studies/{archive.default_partition}/{stored.study}"


def test_search_finds_by_patient_date_and_modality(ui: TestClient, stored: StoreResult) -> None:
    assert "Search by patient" in ui.get("/ui/studies").text
    patient = "CT_small.dcm/1"
    hits = ui.get("/ui/studies", params={"patient_id": patient, "modality": "CT"})
    assert hits.status_code == 200
    assert stored.study in hits.text and "no study matches" not in hits.text
    by_date = ui.get("/ui/studies", params={"date_from": "1900-01-01", "date_to": "2100-12-31"})
    assert stored.study in by_date.text
    none = ui.get("/ui/studies", params={"patient_id": patient, "modality": "MR"})
    assert "no study matches" in none.text
    fragment = ui.get(
        "/ui/studies", params={"patient_id": patient}, headers=htmx(**{"HX-Target": "results"})
    )
    assert fragment.text.lstrip().startswith('<div id="results">')


def test_study_page_shows_series_files_items_and_forwarding(
    ui: TestClient, archive: Archive, stored: StoreResult
) -> None:
    page = ui.get(_page(stored, archive))
    assert page.status_code == 200
    text = page.text
    assert stored.series in text and stored.sop_instance in text
    assert str(archive.settings.storage_dir.resolve()) in text  # where the file lives
    assert "Explicit VR Little Endian" in text or "Implicit VR Little Endian" in text
    assert "process-study" in text  # queued at ingest
    assert "not forwarded" in text
    assert f'/viewer?StudyInstanceUIDs={stored.study}"' in text  # the default partition
    assert ui.get(f"/ui/studies/{archive.default_partition}/1.2.3.4").status_code == 404
    assert ui.get(f"/ui/studies/{archive.default_partition}/not-a-uid").status_code == 400


def test_study_actions_queue_work_and_delete_removes(
    ui: TestClient, archive: Archive, stored: StoreResult, tmp_path: Path
) -> None:
    url = _page(stored, archive)
    assert "reprocessing" in ui.post(f"{url}/reprocess", headers=htmx()).text
    compress = ui.post(f"{url}/compress", data={"syntax": "jpeg-ls-lossless"}, headers=htmx())
    assert "jpeg-ls-lossless compression queued as work item" in compress.text
    assert ui.post(f"{url}/compress", data={"syntax": "jpeg2000"}).status_code == 400

    add_device(archive, Device("PEER", "127.0.0.1", 11112))
    forwarded = ui.post(f"{url}/forward", data={"destination": "PEER"}, headers=htmx())
    assert "forward to PEER queued" in forwarded.text and "pending" in forwarded.text
    assert ui.post(f"{url}/forward", data={"destination": "NOBODY"}).status_code == 404

    slow = tmp_path / "tier2"
    add_filesystem(archive.engine, slow, tier=2)
    archive.filesystems.invalidate()
    source = next(u for u in list_filesystems(archive.engine) if u.tier == 1)
    moved = ui.post(f"{url}/migrate", data={"source": source.pk, "target": ""}, headers=htmx())
    assert "migration queued as work item" in moved.text
    migrate = admin.list_items(archive.engine, kind="migrate-study")
    assert len(migrate) == 1
    Worker(archive, threads=1, kinds=["migrate-study"]).run_until_idle()
    assert admin.get_item(archive.engine, migrate[0].pk).status == "completed"
    assert str(slow.resolve()) in ui.get(url).text

    gone = ui.post(f"{url}/delete", headers=htmx())
    assert gone.status_code == 204
    assert gone.headers["HX-Redirect"].startswith("/ui/studies?")
    assert ui.get(url).status_code == 404
    assert "deleted study" in ui.get(gone.headers["HX-Redirect"]).text
