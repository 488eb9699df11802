"""Partition, listing and C-ECHO commands, run in-process as an operator types them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from hounsfield.archive.context import Archive
from hounsfield.cli import app
from hounsfield.dimse.server import DimseServer
from hounsfield.settings import Settings
from tests.conftest import make_archive, make_settings
from tests.dcmtk import free_port
from tests.synth import instance, write_part10

Run = Callable[..., Result]
LONG_PATH_PART = "a-rather-long-folder-name-that-a-narrow-table-would-cut"


def _env(settings: Settings) -> dict[str, str]:
    # Narrow on purpose: piped tables must still show full names.
    return {
        "HOUNSFIELD_DATA_DIR": str(settings.data_dir),
        "HOUNSFIELD_DATABASE_URL": settings.database_url,
        "COLUMNS": "40",
    }


@pytest.fixture
def run(tmp_path: Path, database_url: str) -> Run:
    """`hounsfield ARGS...` against a fresh archive on each database."""
    settings = make_settings(tmp_path, database_url)
    make_archive(settings).close()
    env = _env(settings)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), env=env)

    return invoke


def _json(result: Result) -> list[dict[str, object]]:
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    return rows


def test_partition_add_list_set_remove(run: Run, tmp_path: Path) -> None:
    port = str(free_port())
    out = run(
        "partition", "add", "CLINIC_NORTH", "--port", port, "--description",
        "North clinic, the one past the very long bridge", "--duplicate-policy", "reject",
        "--accept-from", "CT1, MR1@10.0.0.5",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "added partition CLINIC_NORTH" in out.output
    listed = run("partition", "list")
    assert listed.exit_code == 0, listed.output
    assert "North clinic, the one past the very long bridge" in listed.output
    assert "CLINIC_NORTH" in listed.output and "MR1@10.0.0.5" in listed.output
    assert "…" not in listed.output
    rows = {r["ae_title"]: r for r in _json(run("partition", "list", "--json"))}
    north = rows["CLINIC_NORTH"]
    assert north["port"] == int(port) and north["duplicate_policy"] == "reject"
    assert north["accept_from"] == ["CT1", "MR1@10.0.0.5"]
    assert north["follows_node"] == {"duplicate_policy": False, "caller_policy": True}
    assert "HOUNSFIELD" in rows  # the node's default partition

    out = run("partition", "set", "CLINIC_NORTH", "--duplicate-policy", "default",
              "--caller-policy", "known", "--no-port", "--accept-from", "")  # fmt: skip
    assert out.exit_code == 0, out.output
    north = {r["ae_title"]: r for r in _json(run("partition", "list", "--json"))}["CLINIC_NORTH"]
    assert north["port"] is None and north["caller_policy"] == "known"
    assert north["follows_node"] == {"duplicate_policy": True, "caller_policy": False}
    assert north["accept_from"] == []
    assert north["description"] == "North clinic, the one past the very long bridge"

    bad = run("partition", "set", "CLINIC_NORTH", "--duplicate-policy", "maybe")
    assert bad.exit_code == 2 and "duplicate policy must be one of" in bad.output
    taken = run("partition", "add", "CLINIC_NORTH")
    assert taken.exit_code == 2 and "exists" in taken.output
    missing = run("partition", "set", "NOBODY", "--description", "x")
    assert missing.exit_code == 2 and "no partition" in missing.output
    default = run("partition", "remove", "HOUNSFIELD")
    assert default.exit_code == 2 and "default partition" in default.output

    dicom = write_part10(instance(StudyInstanceUID="1.2.3.99"), tmp_path / "one.dcm")
    imported = run("import", "--partition", "CLINIC_NORTH", str(dicom))
    assert imported.exit_code == 0 and "stored 1" in imported.output, imported.output
    refused = run("partition", "remove", "CLINIC_NORTH")
    assert refused.exit_code == 2, refused.output
    assert "partition CLINIC_NORTH holds 1 studies" in refused.output

    assert run("partition", "add", "EMPTY").exit_code == 0
    removed = run("partition", "remove", "EMPTY")
    assert removed.exit_code == 0 and "removed partition EMPTY" in removed.output
    assert "EMPTY" not in {r["ae_title"] for r in _json(run("partition", "list", "--json"))}


def test_piped_tables_show_full_names(run: Run, tmp_path: Path) -> None:
    folder = tmp_path / LONG_PATH_PART / "tier2"
    assert run("filesystem", "add", str(folder), "--tier", "2").exit_code == 0
    listed = run("filesystem", "list")
    assert listed.exit_code == 0 and str(folder.resolve()) in listed.output, listed.output
    assert "…" not in listed.output
    device = "DEVICE_SIXTEEN16"
    description = "the reading room workstation on the second floor, east wing"
    added = run("device", "add", device, "192.0.2.7", "104", "--description", description)
    assert added.exit_code == 0, added.output
    devices = run("device", "list").output
    assert device in devices and description in devices and "…" not in devices


def test_list_commands_print_json(run: Run) -> None:
    assert run("device", "add", "PACS2", "192.0.2.7", "11112").exit_code == 0
    assert _json(run("device", "list", "--json")) == [
        {
            "ae_title": "PACS2",
            "host": "192.0.2.7",
            "port": 11112,
            "description": "",
            "protocol": "dimse",
            "url": "",
            "associations": 1,
            "bandwidth_kbps": None,
            "commitment": False,
            "alternates": [],
            "tls": False,
        }
    ]
    filesystems = _json(run("filesystem", "list", "--json"))
    assert filesystems and {"path", "tier", "percent"} <= set(filesystems[0])
    args = ["rule", "add", "old-ct", "--action", "tier1-retention", "--when", "Modality=CT"]
    assert run(*args).exit_code == 0
    (rule,) = _json(run("rule", "list", "--json"))
    assert rule["name"] == "old-ct" and rule["conditions"] == ["Modality=CT"]
    assert _json(run("queue", "list", "--json")) == []
    assert _json(run("alerts", "list", "--json")) == []


def test_services_list_piped_and_json(run: Run) -> None:
    services = run("services", "list")
    assert services.exit_code == 0, services.output
    assert "filesystem-watermark-check" in services.output and "…" not in services.output
    rows = _json(run("services", "list", "--json"))
    assert "filesystem-watermark-check" in {s["name"] for s in rows}


def test_queue_and_alerts_json_rows(tmp_path: Path, database_url: str) -> None:
    from hounsfield.alerts import raise_alert
    from hounsfield.db import engine as db
    from hounsfield.workqueue.queue import enqueue

    settings = make_settings(tmp_path, database_url)
    archive = make_archive(settings)
    with db.write(archive.engine) as conn:
        pk = enqueue(conn, "noop", {"note": "first"})
    raise_alert(archive.engine, "error", "storage", "filesystems", "tier 1 is full")
    archive.close()
    env = _env(settings)
    items = _json(CliRunner().invoke(app, ["queue", "list", "--json"], env=env))
    assert [(i["pk"], i["payload"]) for i in items] == [(pk, {"note": "first"})]
    assert "lease_token" not in items[0]
    alerts = _json(CliRunner().invoke(app, ["alerts", "list", "--json"], env=env))
    assert alerts[0]["message"] == "tier 1 is full" and isinstance(alerts[0]["created_at"], str)


def test_echo_a_running_server_and_a_closed_port(
    server: DimseServer, archive: Archive, settings: Settings
) -> None:
    env = _env(settings)
    runner = CliRunner()
    ae = settings.ae_title
    added = runner.invoke(
        app, ["device", "add", ae, "127.0.0.1", str(server.port), "--echo"], env=env
    )
    assert added.exit_code == 0, added.output
    assert f"C-ECHO to {ae} at 127.0.0.1:{server.port}: success in" in added.output
    echoed = runner.invoke(app, ["echo", ae], env=env)
    assert echoed.exit_code == 0 and "success in" in echoed.output, echoed.output

    closed = str(free_port())
    added = runner.invoke(
        app, ["device", "add", "NOBODY", "127.0.0.1", closed, "--echo", "--timeout", "2"], env=env
    )
    assert added.exit_code == 1, added.output
    assert "added NOBODY" in added.output
    listed = runner.invoke(app, ["device", "list", "--json"], env=env)
    assert "NOBODY" in {d["ae_title"] for d in json.loads(listed.stdout)}
    failed = runner.invoke(app, ["echo", "NOBODY", "--timeout", "2"], env=env)
    assert failed.exit_code == 1 and "success" not in failed.output
    unknown = runner.invoke(app, ["echo", "GHOST"], env=env)
    assert unknown.exit_code == 1 and "no device" in unknown.output
