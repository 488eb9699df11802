"""Reconciliation for operators: CLI, API, CSV, schedule, service, metrics, TOML, migration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid
from sqlalchemy import inspect, select, update
from typer.testing import CliRunner

from hounsfield.archive.context import Archive
from hounsfield.catalog import partitions
from hounsfield.cli import app as cli_app
from hounsfield.db import engine as db
from hounsfield.db import migrate
from hounsfield.db.engine import make_engine
from hounsfield.db.tables import (
    metadata,
    reconcile_difference,
    reconcile_job,
    reconcile_report,
)
from hounsfield.dimse.server import DimseServer
from hounsfield.errors import NotFound
from hounsfield.node.bootstrap import apply_declared
from hounsfield.scheduled import lock
from hounsfield.scheduled.scheduler import ensure_services, run_service
from hounsfield.settings import DeviceConfig, PartitionConfig, ReconcileConfig, load_settings
from hounsfield.sites.devices import Device, add_device
from hounsfield.sites.reconcile_queue import item_reason
from hounsfield.sites.reconcile_reports import begin_report, get_report
from hounsfield.sites.reconcile_schedule import covered, list_jobs, next_run
from hounsfield.web.app import create_app
from hounsfield.workers.runner import Worker
from hounsfield.workqueue import admin
from hounsfield.workqueue.items import now
from tests.conftest import make_archive, make_settings
from tests.sites.reconcile_clinic import Study, clinic_node, into

DAY = date(2024, 6, 3)


@pytest.fixture
def hq(archive: Archive, server: DimseServer) -> Archive:
    """Headquarters with a partition for the clinic."""
    with db.write(archive.engine) as conn:
        partitions.add(conn, "CLINIC_A")
    archive.forget_partitions()
    return archive


@pytest.fixture
def clinic(hq: Archive, tmp_path: Path) -> Iterator[Archive]:
    """The clinic: another Hounsfield node, known to HQ as device CLINIC."""
    with clinic_node(tmp_path) as (node, node_server):
        add_device(hq, Device("CLINIC", "127.0.0.1", node_server.port))
        yield node


def _studies(hq: Archive, clinic: Archive, when: date) -> None:
    """Three studies of three instances dated `when` at the clinic; HQ lacks the last one."""
    for n in range(3):
        study = Study(generate_uid(), when.strftime("%Y%m%d"), f"0{n + 7}0000")
        study.series[generate_uid()] = [generate_uid() for _ in range(3)]
        for ds in study.datasets():
            into(clinic)(ds)
            if n < 2:
                into(hq, "CLINIC_A")(ds)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_runs_reports_exports_and_schedules(hq: Archive, clinic: Archive) -> None:
    _studies(hq, clinic, DAY)
    s = hq.settings
    env = {"HOUNSFIELD_DATA_DIR": str(s.data_dir), "HOUNSFIELD_DATABASE_URL": s.sqlalchemy_url}

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli_app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.stdout

    span = ("--from", "20240603", "--to", "2024-06-03")
    found = json.loads(run("reconcile", "CLINIC_A", "--with", "CLINIC", *span, "--json", code=1))
    assert (found["state"], found["missing"], found["missing_left"]) == ("complete", 3, 3)
    assert [d["level"] for d in found["found"]] == ["STUDY"]
    fetched = run("reconcile", "CLINIC_A", "--with", "CLINIC", *span, "--fetch")
    assert "missing here 3 objects (fetched 3)" in fetched and "left 0 missing" in fetched
    listed = run("reconcile", "report")
    assert "CLINIC_A" in listed and "20240603-20240603" in listed
    shown = run("reconcile", "report", str(found["pk"]))
    assert "differences found" in shown and found["found"][0]["study"] in shown
    exported = run("reconcile", "report", str(found["pk"]), "--csv").splitlines()
    assert exported[0].startswith("pass,side,level") and exported[1].startswith("1,missing,STUDY")
    missing = run("reconcile", "report", "999", code=1)
    assert missing == ""

    assert "added nightly" in run(
        "reconcile", "schedule", "add", "nightly", "CLINIC_A", "--with", "CLINIC",
        "--period", "last-7-days", "--direction", "fetch", "--at", "03:30",
    )  # fmt: skip
    jobs = json.loads(run("reconcile", "schedule", "list", "--json"))
    assert [(j["name"], j["period"], j["direction"], j["at"]) for j in jobs] == [
        ("nightly", "last-7-days", "fetch", "03:30")
    ]
    assert "removed nightly" in run("reconcile", "schedule", "remove", "nightly")
    run("reconcile", "schedule", "remove", "nightly", code=1)
    run(
        "reconcile", "schedule", "add", "x", "CLINIC_A", "--with", "CLINIC", "--at", "25:00", code=1
    )
    run("reconcile", "CLINIC_A", "--with", "NOBODY", *span, code=2)
    assert "queued as work item #" in run(
        "reconcile", "CLINIC_A", "--with", "CLINIC", *span, "--background"
    )
    assert "already queued" in run(
        "reconcile", "CLINIC_A", "--with", "CLINIC", *span, "--background"
    )
    (item,) = admin.list_items(hq.engine, kind="reconcile")
    assert (item.payload["partition"], item.payload["from"]) == ("CLINIC_A", "20240603")


def test_admin_api_runs_and_serves_reports_jobs_and_metrics(hq: Archive, clinic: Archive) -> None:
    _studies(hq, clinic, DAY)
    client = TestClient(create_app(hq))
    body = {"partition": "CLINIC_A", "peer": "CLINIC", "date_from": "20240603"}
    first = client.post("/admin/reconcile", json={**body, "date_to": "20240603"})
    assert first.status_code == 200, first.text
    assert (first.json()["state"], first.json()["missing"]) == ("complete", 3)
    second = client.post("/admin/reconcile", json={**body, "date_to": "20240603", "fetch": True})
    assert (second.json()["fetched"], second.json()["missing_left"]) == (3, 0)

    reports = client.get("/admin/reconcile/reports").json()
    assert [r["pk"] for r in reports] == [second.json()["pk"], first.json()["pk"]]
    one = client.get(f"/admin/reconcile/reports/{first.json()['pk']}").json()
    assert [d["side"] for d in one["found"]] == ["missing"]
    csv = client.get(f"/admin/reconcile/reports/{second.json()['pk']}.csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[1].startswith("1,missing,STUDY,20240603")
    assert client.get("/admin/reconcile/reports/999").status_code == 404
    assert client.post("/admin/reconcile", json={**body, "date_to": "x"}).status_code == 400
    unknown = {**body, "peer": "NOBODY", "date_to": "20240603"}
    assert client.post("/admin/reconcile", json=unknown).status_code == 404
    later = {**body, "date_to": "20240603", "background": True}
    queued = client.post("/admin/reconcile", json=later)
    assert queued.status_code == 202 and queued.json()["work_item"] > 0
    again = client.post("/admin/reconcile", json=later)
    assert again.status_code == 202 and again.json()["work_item"] is None  # already waiting
    bad = client.post("/admin/reconcile", json={**unknown, "background": True})
    assert bad.status_code == 404  # checked before it is queued

    job = {"partition": "CLINIC_A", "peer": "CLINIC", "period": "last-month"}
    assert client.put("/admin/reconcile/jobs/monthly", json=job).json()["created"] is True
    assert [j["name"] for j in client.get("/admin/reconcile/jobs").json()] == ["monthly"]
    assert client.delete("/admin/reconcile/jobs/monthly").status_code == 200
    assert client.delete("/admin/reconcile/jobs/monthly").status_code == 404

    metrics = client.get("/metrics").text
    labels = 'partition="CLINIC_A",peer="CLINIC"'
    stamp = f"hounsfield_reconcile_last_complete_timestamp_seconds{{{labels}}} "
    line = next(li for li in metrics.splitlines() if li.startswith(stamp))
    assert abs(float(line.split()[-1]) - datetime.now().timestamp()) < 120
    assert f'hounsfield_reconcile_differences{{{labels},side="missing"}} 0.0' in metrics


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_service_runs_due_jobs_for_their_period(hq: Archive, clinic: Archive) -> None:
    yesterday = datetime.now().astimezone().date() - timedelta(days=1)
    _studies(hq, clinic, yesterday)
    ensure_services(hq)
    assert lock.get_service(hq.engine, "reconcile-with-peers").enabled is False
    client = TestClient(create_app(hq))
    job = {"partition": "CLINIC_A", "peer": "CLINIC", "direction": "fetch", "at": "01:00"}
    client.put("/admin/reconcile/jobs/nightly", json=job)
    assert run_service(hq, "reconcile-with-peers", force=True) == "no reconciliation due"
    due = now().replace(microsecond=0) - timedelta(minutes=1)
    with db.write(hq.engine) as conn:
        conn.execute(update(reconcile_job).values(next_run_at=due))

    result = run_service(hq, "reconcile-with-peers", force=True)
    assert result is not None and result.startswith("nightly: queued as item #")
    (ran,) = list_jobs(hq.engine)
    assert ran.last_report is None and ran.next_run_at > now()
    # Any node's worker runs it; an earlier attempt's report left running (its node died)
    # is closed as interrupted.
    (item,) = admin.list_items(hq.engine, kind="reconcile")
    stale = begin_report(
        hq.engine,
        "CLINIC_A",
        "CLINIC",
        yesterday,
        yesterday,
        "fetch",
        item_reason("job nightly", item.pk),
    )
    assert Worker(hq, threads=1, processes=0).run_until_idle() == 1
    assert get_report(hq.engine, stale).state == "failed"
    (ran,) = list_jobs(hq.engine)
    assert ran.last_report is not None and ran.last_report != stale
    report = get_report(hq.engine, ran.last_report)
    assert (report.reason, report.fetched, report.differences_left) == (
        f"job nightly (item {item.pk})",
        3,
        0,
    )
    assert report.date_from == report.date_to == covered("yesterday", due)[0].strftime("%Y%m%d")


def test_periods_cover_their_days_and_run_at_their_time() -> None:
    at = datetime(2024, 3, 1, 2, 0).astimezone()
    assert covered("yesterday", at) == (date(2024, 2, 29), date(2024, 2, 29))
    assert covered("last-7-days", at) == (date(2024, 2, 23), date(2024, 2, 29))
    assert covered("last-month", at) == (date(2024, 2, 1), date(2024, 2, 29))
    assert covered("last-month", datetime(2024, 1, 1, 2).astimezone()) == (
        date(2023, 12, 1),
        date(2023, 12, 31),
    )
    local = datetime(2024, 3, 1, 3, 0).astimezone()
    assert next_run("yesterday", "02:00", local) == datetime(2024, 3, 2, 2, 0).astimezone()
    assert next_run("yesterday", "04:15", local) == datetime(2024, 3, 1, 4, 15).astimezone()
    assert next_run("last-month", "02:00", local) == datetime(2024, 4, 1, 2, 0).astimezone()
    assert next_run("last-month", "04:00", local) == datetime(2024, 3, 1, 4, 0).astimezone()


def test_declared_jobs_are_applied_and_kept_until_changed(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text(
        '[[partitions]]\nae_title = "CLINIC_A"\n\n'
        '[[devices]]\nae_title = "CLINIC"\nhost = "10.0.0.9"\nport = 104\n\n'
        '[[reconcile]]\nname = "monthly"\npartition = "CLINIC_A"\npeer = "CLINIC"\n'
        'period = "last-month"\ndirection = "fetch"\nat = "04:00"\n'
    )
    declared = load_settings(toml)
    assert declared.reconcile == [
        ReconcileConfig(
            name="monthly", partition="CLINIC_A", peer="CLINIC", period="last-month",
            direction="fetch", at="04:00",
        )
    ]  # fmt: skip
    settings = make_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'index.db'}",
        partitions=[PartitionConfig(ae_title="CLINIC_A")],
        devices=[DeviceConfig(ae_title="CLINIC", host="10.0.0.9", port=104)],
        reconcile=declared.reconcile,
    )
    archive = make_archive(settings)
    try:
        apply_declared(archive)
        (made,) = list_jobs(archive.engine)
        assert (made.period, made.direction, made.at) == ("last-month", "fetch", "04:00")
        assert made.next_run_at.astimezone().day == 1
        apply_declared(archive)
        assert list_jobs(archive.engine) == [made]  # unchanged: same next run
        settings.reconcile[0] = settings.reconcile[0].model_copy(update={"direction": "both"})
        apply_declared(archive)
        assert list_jobs(archive.engine)[0].direction == "both"
    finally:
        archive.close()


def test_the_migration_matches_the_tables(tmp_path: Path, database_url: str) -> None:
    engine = make_engine(make_settings(tmp_path, database_url).sqlalchemy_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), metadata
            )
        assert [d for d in diff if "reconcile" in repr(d)] == []
        cfg = migrate.alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0006")
        assert not {"reconcile_report", "reconcile_difference", "reconcile_job"} & set(
            inspect(engine).get_table_names()
        )
        migrate.upgrade(engine)
        assert "reconcile_job" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_old_reports_are_purged_but_each_pairs_last_proof_stays(archive: Archive) -> None:
    """purge-reconcile-reports removes what finished more than `reconcile_keep_days` ago, with
    its differences; the newest finished report of each partition and peer, a scheduled
    job's last report and a running one stay."""
    engine = archive.engine
    long_ago = datetime.now().astimezone() - timedelta(
        days=archive.settings.reconcile_keep_days + 5
    )

    def report(peer: str, finished: datetime | None, state: str = "complete") -> int:
        pk = begin_report(engine, "HOUNSFIELD", peer, DAY, DAY, "none", "by hand")
        with db.write(engine) as conn:
            conn.execute(
                update(reconcile_report)
                .where(reconcile_report.c.pk == pk)
                .values(state=state, finished_at=finished, started_at=finished or long_ago)
            )
            conn.execute(
                reconcile_difference.insert().values(
                    report_pk=pk, pass_no=1, side="missing", level="STUDY", study_iuid="1.2.3"
                )
            )
        return pk

    gone = [report("CLINIC", long_ago), report("CLINIC", long_ago)]
    kept_last = report("CLINIC", long_ago)  # the newest finished one of CLINIC
    running = report("CLINIC", None, state="running")
    by_job = report("OTHER", long_ago)
    last_of_other = report("OTHER", long_ago)
    recent = report("OTHER", datetime.now().astimezone())
    with db.write(engine) as conn:
        conn.execute(
            reconcile_job.insert().values(
                name="nightly",
                partition_ae="HOUNSFIELD",
                peer_ae="OTHER",
                period="yesterday",
                at_time="02:00",
                direction="none",
                enabled=True,
                next_run_at=datetime.now().astimezone(),
                last_report_pk=by_job,
            )
        )
    ensure_services(archive)
    assert run_service(archive, "purge-reconcile-reports", force=True) == (
        f"removed {len(gone) + 1} reconciliation reports"
    )  # the OTHER report between the job's and the recent one went too
    with db.read(engine) as conn:
        left = set(conn.scalars(select(reconcile_report.c.pk)))
        with_differences = set(conn.scalars(select(reconcile_difference.c.report_pk)))
    assert left == {kept_last, running, by_job, recent} == with_differences
    assert last_of_other not in left
    for pk in gone:
        with pytest.raises(NotFound):
            get_report(engine, pk)
