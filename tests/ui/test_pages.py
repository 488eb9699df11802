"""Every admin page loads with its key content and its actions work, on both databases."""

from __future__ import annotations

import logging
import os
from datetime import date, timedelta

from fastapi.testclient import TestClient

from hounsfield import __version__
from hounsfield.alerts import raise_alert
from hounsfield.archive.context import Archive
from hounsfield.cluster import nodes
from hounsfield.dimse.server import DimseServer
from hounsfield.rules.model import Condition, Rule
from hounsfield.rules.saved import list_rules, save_rule
from hounsfield.scheduled import lock
from hounsfield.scheduled.applog import DatabaseLogHandler
from hounsfield.scheduled.scheduler import LEASE
from hounsfield.sites.devices import Device, add_device, list_devices
from hounsfield.sites.reconcile_reports import begin_report, fail_report
from hounsfield.workqueue import admin
from tests.ui.conftest import htmx
from tests.ui.helpers import failed_item


def test_root_redirects_and_overview(ui: TestClient, archive: Archive) -> None:
    moved = ui.get("/ui", follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == "/ui/"
    home = ui.get("/ui/")
    assert home.status_code == 200 and "Overview" in home.text
    assert str(archive.settings.storage_dir.resolve()) in home.text
    assert ui.get("/ui/static/style.css").status_code == 200
    assert "/ui/" not in str(ui.get("/openapi.json").json()["paths"])


def test_queue_filters_retry_and_cancel(ui: TestClient, archive: Archive) -> None:
    pk = failed_item(archive)
    page = ui.get("/ui/queue", params={"status": "failed"})
    assert page.status_code == 200
    assert f'id="item-{pk}"' in page.text and "peer refused" in page.text
    assert "Retry" in page.text
    assert ui.get("/ui/queue", params={"status": "bogus"}).status_code == 400
    table = ui.get("/ui/queue", headers=htmx(**{"HX-Target": "queue"}))
    assert table.text.lstrip().startswith('<div id="queue"')
    restore = htmx(**{"HX-Target": "queue", "HX-History-Restore-Request": "true"})
    assert "<html" in ui.get("/ui/queue", headers=restore).text

    row = ui.post(f"/ui/queue/{pk}/retry", headers=htmx())
    assert row.status_code == 200 and ">pending<" in row.text and "Cancel" in row.text
    assert admin.get_item(archive.engine, pk).status == "pending"
    assert ui.post(f"/ui/queue/{pk}/retry").status_code == 400  # only failed or cancelled
    row = ui.post(f"/ui/queue/{pk}/cancel", headers=htmx())
    assert ">cancelled<" in row.text and "Retry" in row.text
    assert ui.post("/ui/queue/999999/cancel").status_code == 404


def test_services_enable_disable_reschedule_run_and_locked(
    ui: TestClient, archive: Archive
) -> None:
    page = ui.get("/ui/services")
    assert page.status_code == 200 and "purge-work-items" in page.text
    table = ui.get("/ui/services", headers=htmx(**{"HX-Target": "services"}))
    assert table.text.lstrip().startswith('<div id="services"')
    row = ui.post("/ui/services/purge-work-items/disable", headers=htmx())
    assert "disabled" in row.text and "Enable" in row.text
    assert not lock.get_service(archive.engine, "purge-work-items").enabled
    row = ui.post("/ui/services/purge-work-items/enable", headers=htmx())
    assert ">enabled<" in row.text
    row = ui.post("/ui/services/purge-work-items/reschedule", data={"interval_seconds": "120"})
    assert 'value="120"' in row.text
    assert lock.get_service(archive.engine, "purge-work-items").interval_seconds == 120
    ran = ui.post("/ui/services/recount-usage/run", headers=htmx())
    assert "usage counters exact" in ran.text

    assert lock.acquire(archive.engine, "recount-usage", "other-node", LEASE, force=True)
    assert "locked by other-node" in ui.get("/ui/services").text
    busy = ui.post("/ui/services/recount-usage/run", headers=htmx())
    assert "running on another node" in busy.text
    assert ui.post("/ui/services/no-such/disable").status_code == 404


def test_filesystems_show_usage_against_watermarks(ui: TestClient, archive: Archive) -> None:
    page = ui.get("/ui/filesystems")
    assert page.status_code == 200
    assert "Tier 1" in page.text and str(archive.settings.storage_dir.resolve()) in page.text
    assert 'class="bar"' in page.text and "80% / 90%" in page.text


def test_rules_disable_enable_remove(ui: TestClient, archive: Archive) -> None:
    save_rule(
        archive.engine,
        Rule(
            "old-ct",
            "tier1-retention",
            (Condition("Modality", "equals", ("CT",)),),
            after_seconds=86400,
        ),
    )
    page = ui.get("/ui/rules")
    assert "old-ct" in page.text and "after 1 day from receipt" in page.text
    assert "(disabled)" in ui.post("/ui/rules/old-ct/disable", headers=htmx()).text
    assert not list_rules(archive.engine)[0].enabled
    assert "(disabled)" not in ui.post("/ui/rules/old-ct/enable", headers=htmx()).text
    assert "no rules" in ui.post("/ui/rules/old-ct/remove", headers=htmx()).text


def test_devices_add_echo_remove(ui: TestClient, archive: Archive, server: DimseServer) -> None:
    added = ui.post(
        "/ui/devices",
        data={"ae_title": archive.settings.ae_title, "host": "127.0.0.1", "port": server.port},
        headers=htmx(),
    )
    assert f"added {archive.settings.ae_title}" in added.text
    echo = ui.post(f"/ui/devices/{archive.settings.ae_title}/echo", headers=htmx())
    assert "success in" in echo.text
    add_device(archive, Device("DEAD", "127.0.0.1", 9))
    failed = ui.post("/ui/devices/DEAD/echo", headers=htmx())
    assert "C-ECHO failed" in failed.text
    page = ui.get("/ui/devices")
    assert "DEAD" in page.text and "no forwards" in page.text
    assert "removed DEAD" in ui.post("/ui/devices/DEAD/remove", headers=htmx()).text
    assert [d.ae_title for d in list_devices(archive)] == [archive.settings.ae_title]
    bad = ui.post("/ui/devices", data={"ae_title": "X", "host": "h", "port": "0"})
    assert bad.status_code == 400
    # An update through the form keeps the forwarding options the form does not show.
    add_device(archive, Device("HQ", "10.0.0.1", 104, associations=3, commitment=True))
    form = {"ae_title": "HQ", "host": "10.0.0.2", "port": "104", "alternates": "10.0.0.3:104"}
    assert "updated HQ" in ui.post("/ui/devices", data=form, headers=htmx()).text
    hq = next(d for d in list_devices(archive) if d.ae_title == "HQ")
    assert (hq.host, hq.associations, hq.commitment) == ("10.0.0.2", 3, True)
    assert hq.alternates == ("10.0.0.3:104",) and not hq.tls


def test_partitions_alerts_and_log(ui: TestClient, archive: Archive) -> None:
    page = ui.get("/ui/partitions")
    assert archive.settings.ae_title in page.text and "(default)" in page.text
    raise_alert(archive.engine, "error", "storage", "fs-1", "disk almost full")
    assert "disk almost full" in ui.get("/ui/alerts").text

    handler = DatabaseLogHandler(archive.engine, "node-a")
    logger = logging.getLogger("hounsfield.test.ui")
    logger.addHandler(handler)
    try:
        logger.warning("something odd on %s", "node-a")
    finally:
        logger.removeHandler(handler)
        handler.close()
    log = ui.get("/ui/log", params={"level": "warning"})
    assert "something odd on node-a" in log.text
    assert "nothing logged" in ui.get("/ui/log", params={"node": "node-b"}).text


def test_reconcile_reports_and_cluster(ui: TestClient, archive: Archive) -> None:
    title = archive.settings.ae_title
    assert "no reconciliation yet" in ui.get("/ui/reconcile").text
    day = date.today() - timedelta(days=1)
    pk = begin_report(archive.engine, title, "CLINIC", day, day, "fetch", "by hand")
    fail_report(archive.engine, pk, "peer unreachable")
    listed = ui.get("/ui/reconcile")
    assert f'href="/ui/reconcile/{pk}"' in listed.text and "CLINIC" in listed.text
    report = ui.get(f"/ui/reconcile/{pk}")
    assert report.status_code == 200 and "peer unreachable" in report.text
    assert ui.get("/ui/reconcile/999999").status_code == 404

    assert "no node has registered" in ui.get("/ui/cluster").text
    info = nodes.NodeInfo("node-a", "10.0.0.1", 11112, 8042, __version__, os.getpid(), ("http",))
    nodes.register(archive.engine, info)
    assert "node-a" in ui.get("/ui/cluster").text
    drained = ui.post("/ui/cluster/node-a/drain", headers=htmx())
    assert "draining" in drained.text and "Resume" in drained.text
    assert nodes.draining(archive.engine, "node-a")
    ui.post("/ui/cluster/node-a/resume", headers=htmx())
    assert not nodes.draining(archive.engine, "node-a")
