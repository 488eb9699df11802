"""A study's files, migrate, compress, reprocess and delete: the admin API and the CLI call
the same operator functions, and the queued work really happens."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hounsfield.archive.context import Archive
from hounsfield.cli import app as cli_app
from hounsfield.storage.tiers import add_filesystem
from hounsfield.web.app import create_app
from hounsfield.workers.runner import Worker
from hounsfield.workqueue import admin
from tests.storage_helpers import store_variant


def test_admin_api_moves_compresses_reprocesses_and_deletes(
    archive: Archive, tmp_path: Path
) -> None:
    stored = store_variant(archive, "CT_small.dcm", 1)
    add_filesystem(archive.engine, tmp_path / "tier2", tier=2)
    client = TestClient(create_app(archive))
    base = f"/admin/studies/{archive.default_partition}/{stored.study}"
    (before,) = client.get(f"{base}/files").json()
    assert before["tier"] == 1 and before["sop_uid"] == stored.sop_instance

    moved = client.post(f"{base}/migrate", json={"target": str((tmp_path / "tier2").resolve())})
    assert moved.status_code == 200 and moved.json()["queued"]
    assert client.post(f"{base}/migrate").json() == {"work_item": None, "queued": False}
    Worker(archive, threads=1, processes=0).run_until_idle()
    (after,) = client.get(f"{base}/files").json()
    assert after["tier"] == 2

    assert client.post(f"{base}/compress", json={"syntax": "jpeg2000"}).status_code == 400
    assert client.post(f"{base}/compress").json()["queued"]
    # The study's processing still waits for its settle time since the store: not twice.
    assert client.post(f"{base}/reprocess").json() == {"work_item": None, "queued": False}
    kinds = {i.kind for i in admin.study_items(archive.engine, 1, stored.study)}
    assert {"migrate-study", "compress-study", "process-study"} <= kinds
    Worker(archive, threads=1, processes=0).run_until_idle()
    (compressed,) = client.get(f"{base}/files").json()
    assert compressed["transfer_syntax"] == "1.2.840.10008.1.2.4.202"

    assert client.delete(base).json() == {"deleted": 1}
    assert client.get(f"{base}/files").status_code == 404
    assert client.post("/admin/studies/NOPART/1.2.3/reprocess").status_code == 404
    assert "/admin/studies/{partition}/{uid}/migrate" in client.get("/openapi.json").json()["paths"]


def test_cli_study_commands(archive: Archive) -> None:
    stored = store_variant(archive, "MR_small.dcm", 2)
    s = archive.settings
    env = {"HOUNSFIELD_DATA_DIR": str(s.data_dir), "HOUNSFIELD_DATABASE_URL": s.sqlalchemy_url}

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli_app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.stdout

    (row,) = json.loads(run("study", "files", stored.study, "--json"))
    assert row["sop_uid"] == stored.sop_instance
    assert "already waiting" in run("study", "reprocess", stored.study)  # since the store
    assert "queued as work item" in run("study", "compress", stored.study)
    run("study", "compress", stored.study, "--syntax", "nonsense", code=2)
    run("study", "migrate", stored.study, "--to", "/nowhere", code=2)
    run("study", "delete", stored.study, code=1)  # not confirmed
    assert "deleted study" in run("study", "delete", stored.study, "--yes")
    run("study", "files", stored.study, code=2)
