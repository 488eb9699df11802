"""Operating the queue: `hounsfield queue …` and the /admin HTTP API."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.web.app import create_app
from hounsfield.workqueue import admin
from hounsfield.workqueue.items import Priority
from hounsfield.workqueue.queue import Queue, enqueue
from tests.conftest import make_archive, make_settings


def test_queue_cli(tmp_path: Path, database_url: str) -> None:
    from hounsfield.cli import app

    settings = make_settings(tmp_path, database_url)
    archive = make_archive(settings)
    with db.write(archive.engine) as conn:
        first = enqueue(conn, "noop", {"note": "first"}, priority=Priority.STAT)
        second = enqueue(conn, "noop", {"note": "second"})
    archive.close()
    env = {
        "HOUNSFIELD_DATA_DIR": str(settings.data_dir),
        "HOUNSFIELD_DATABASE_URL": database_url,
        "COLUMNS": "250",
    }
    runner = CliRunner()
    out = runner.invoke(app, ["queue", "list"], env=env)
    assert out.exit_code == 0, out.output
    assert "pending 2" in out.output and out.output.index('"first"') < out.output.index('"second"')
    out = runner.invoke(app, ["queue", "cancel", str(second)], env=env)
    assert out.exit_code == 0 and "cancelled" in out.output
    out = runner.invoke(app, ["queue", "show", str(second)], env=env)
    assert "cancelled" in out.output and '"second"' in out.output
    assert runner.invoke(app, ["queue", "list", "--status", "bogus"], env=env).exit_code == 2
    assert runner.invoke(app, ["queue", "show", "999"], env=env).exit_code == 2
    out = runner.invoke(app, ["queue", "work", "--threads", "2"], env=env)
    assert out.exit_code == 0 and "ran 1 work items" in out.output
    out = runner.invoke(app, ["queue", "retry", str(second)], env=env)
    assert out.exit_code == 0 and "pending" in out.output
    out = runner.invoke(app, ["queue", "list", "--status", "completed"], env=env)
    assert f"│ {first} " in out.output
    out = runner.invoke(app, ["services", "list"], env=env)
    assert out.exit_code == 0 and "filesystem-watermark-check" in out.output
    out = runner.invoke(app, ["services", "disable", "import-files"], env=env)
    assert out.exit_code == 0 and "disabled" in out.output
    out = runner.invoke(app, ["services", "run", "purge-work-items"], env=env)
    assert out.exit_code == 0 and "purge-work-items: removed 0" in out.output


def test_admin_api(archive: Archive) -> None:
    with db.write(archive.engine) as conn:
        pk = enqueue(conn, "noop")
    client = TestClient(create_app(archive))
    body = client.get("/admin/queue").json()
    assert body["counts"] == {"pending": 1} and body["items"][0]["pk"] == pk
    assert "lease_token" not in body["items"][0]
    assert client.get("/admin/queue", params={"status": "nope"}).status_code == 400
    assert client.get("/admin/queue/999").status_code == 404
    assert client.post(f"/admin/queue/{pk}/retry").status_code == 400  # not failed
    assert client.post(f"/admin/queue/{pk}/cancel").json()["status"] == "cancelled"
    assert client.post(f"/admin/queue/{pk}/retry").json()["status"] == "pending"
    item = Queue(archive.engine, "n").claim()
    assert item is not None
    assert client.get(f"/admin/queue/{pk}").json()["node"] == "n"
    assert admin.get_item(archive.engine, pk).status == "in_progress"
    fs = client.get("/admin/filesystems").json()
    assert fs[0]["tier"] == 1 and fs[0]["percent"] is not None
    assert client.get("/admin/services").status_code == 200


def test_alerts_api_and_cli(tmp_path: Path, database_url: str) -> None:
    from hounsfield.alerts import raise_alert
    from tests.livenode import cli, node_env

    env = node_env(tmp_path / "data", database_url)
    assert cli(env, "db", "upgrade").returncode == 0
    archive = make_archive(make_settings(tmp_path, database_url))
    raise_alert(archive.engine, "error", "storage", "filesystems", "tier 1 is full")
    raise_alert(archive.engine, "warning", "queue", "migrate-study 7", "failed 3 times")
    client = TestClient(create_app(archive))
    alerts = client.get("/admin/alerts", params={"limit": 1}).json()
    assert [(a["level"], a["message"]) for a in alerts] == [("warning", "failed 3 times")]
    assert len(client.get("/admin/alerts").json()) == 2
    assert client.get("/admin/alerts", params={"limit": 0}).status_code == 422
    archive.close()
    listed = cli(env, "alerts", "list").stdout
    assert "tier 1 is full" in listed and "failed 3 times" in listed
