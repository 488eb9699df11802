"""Forwarding from the operator's side: CLI, admin API, the rate cap, purge after proof."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid
from sqlalchemy import select
from typer.testing import CliRunner

from hounsfield.archive.context import Archive
from hounsfield.cli import app
from hounsfield.db import engine as db
from hounsfield.db.tables import forward, study, work_item
from hounsfield.rules.model import Rule
from hounsfield.rules.saved import apply_rules, save_rule
from hounsfield.scheduled.watermark import plan_filesystem
from hounsfield.sites.devices import Device, add_device, find_device
from hounsfield.sites.forward_state import list_forwards
from hounsfield.sites.links import RateCap, rate_cap
from hounsfield.storage.tiers import list_filesystems, set_filesystem
from hounsfield.web.app import create_app
from hounsfield.workers.runner import Worker
from tests.sites.peers import StoreCommitSCP
from tests.synth import instance, put


def _study(archive: Archive, count: int) -> str:
    uid = generate_uid()
    for n in range(count):
        put(archive, instance(StudyInstanceUID=uid, InstanceNumber=n + 1))
    return uid


def test_cli_adds_a_destination_forwards_lists_and_retries(archive: Archive) -> None:
    s = archive.settings
    env = {"HOUNSFIELD_DATA_DIR": str(s.data_dir), "HOUNSFIELD_DATABASE_URL": s.sqlalchemy_url}

    def run(*args: str) -> str:
        result = CliRunner().invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    uid = _study(archive, 2)
    dest = StoreCommitSCP("HQ")
    try:
        run(
            "device", "add", "HQ", "127.0.0.1", str(dest.port),
            "--associations", "2", "--bandwidth-kbps", "100000", "--commitment",
        )  # fmt: skip
        found = find_device(archive, "HQ")
        assert found is not None and (found.associations, found.commitment) == (2, True)
        assert "2 at once" in run("device", "list")
        assert "queued 1 study to HQ" in run("forward", "HQ", "--study", uid)
        rows = json.loads(run("forwards", "list", "--json"))
        assert [(r["study"], r["destination"], r["state"]) for r in rows] == [
            (uid, "HQ", "pending")
        ]
        with db.write(archive.engine) as conn:
            conn.execute(forward.update().values(state="failed"))
        assert "queued 1 failed forward again" in run("forwards", "retry", "--destination", "HQ")
    finally:
        dest.stop()
    bad = CliRunner().invoke(app, ["forward", "NOWHERE", "--study", uid], env=env)
    assert bad.exit_code == 1 and "no device" in bad.output


def test_admin_api_forwards(archive: Archive) -> None:
    uid = _study(archive, 1)
    client = TestClient(create_app(archive))
    put_dev = client.put("/admin/devices/WEB", json={"host": "h", "port": 104})
    assert put_dev.status_code == 200 and put_dev.json()["created"] is True
    bad = client.put("/admin/devices/WEB2", json={"host": "h", "port": 104, "protocol": "dicomweb"})
    assert bad.status_code == 400 and "base URL" in bad.text
    queued = client.post("/admin/forwards", json={"destination": "WEB", "study": uid})
    assert queued.status_code == 202 and queued.json()["queued"] == [uid]
    listed = client.get("/admin/forwards", params={"destination": "WEB"}).json()
    assert [(f["study"], f["state"]) for f in listed] == [(uid, "pending")]
    assert (
        client.post("/admin/forwards", json={"destination": "NONE", "study": uid}).status_code
        == 404
    )
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/admin/forwards", "/admin/forwards/retry", "/admin/devices"} <= set(paths)


def test_rate_cap_holds_the_average_rate() -> None:
    cap = RateCap(800)  # 100 kB/s, with a one-second allowance
    waited = sum(cap.spend(50_000) for _ in range(6))  # 300 kB
    assert waited >= 1.9  # (300 kB - 100 kB allowance) / 100 kB/s
    assert rate_cap("A", 800) is rate_cap("A", 800) and rate_cap("A", None) is None


def test_online_retention_purges_only_what_destinations_committed(archive: Archive) -> None:
    proven, unproven = _study(archive, 2), _study(archive, 2)
    save_rule(
        archive.engine,
        Rule("after-hq", "online-retention", params={"require_committed": ["HQ"]}),
    )
    dest = StoreCommitSCP("HQ")
    add_device(archive, Device("HQ", "127.0.0.1", dest.port, commitment=True))
    from hounsfield.sites.forward import forward_studies

    try:
        forward_studies(archive, "HQ", study=proven)
        deadline = time.monotonic() + 30
        while list_forwards(archive.engine, study=proven)[0].state != "committed":
            assert time.monotonic() < deadline
            Worker(archive, threads=1, processes=0).run_until_idle()
            time.sleep(0.1)
    finally:
        dest.stop()
    with db.read(archive.engine) as conn:
        pks = dict(conn.execute(select(study.c.study_iuid, study.c.pk)).all())
    for uid in (proven, unproven):
        apply_rules(archive.engine, pks[uid])
    (fs,) = list_filesystems(archive.engine)
    set_filesystem(archive.engine, fs.path, capacity_bytes=1000, high_watermark=1, low_watermark=0)
    usages = list_filesystems(archive.engine)
    with db.write(archive.engine) as conn:
        plan = plan_filesystem(conn, usages[0], usages)
        items = conn.execute(select(work_item.c.kind, work_item.c.payload)).all()
    deletes = [json.loads(p)["study_pk"] for k, p in items if k == "delete-study"]
    assert deletes == [pks[proven]], plan


@pytest.mark.parametrize("value", ["22:00-06:00", "07:30-19:00"])
def test_forward_rule_needs_destinations_and_a_readable_window(value: str) -> None:
    from hounsfield.errors import InvalidDataset

    assert Rule("ok", "forward", params={"destinations": "HQ,RESEARCH", "window": value})
    with pytest.raises(InvalidDataset):
        Rule("none", "forward", params={})
    with pytest.raises(InvalidDataset):
        Rule("bad", "forward", params={"destinations": ["HQ"], "window": "nights"})
    with pytest.raises(InvalidDataset):
        Rule("bad", "forward", params={"destinations": ["HQ"], "trigger": "sometimes"})


def test_declared_devices_carry_forwarding_options(tmp_path: Path) -> None:
    from hounsfield.settings import DeviceConfig

    cfg = DeviceConfig(
        ae_title="HQ", host="hq", port=104, associations=3, bandwidth_kbps=20000, commitment=True
    )
    assert Device(**cfg.model_dump()).associations == 3
