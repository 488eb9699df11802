"""HTTP in the audit trail: logins and logouts, refused rights and bad credentials, DICOMweb
queries and retrievals by user, configuration changes, and who may read the trail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread

from hounsfield.archive.context import Archive
from hounsfield.archive.importer import import_file
from hounsfield.audit import trail
from hounsfield.audit.events import MINOR_FAILURE, SUCCESS
from hounsfield.audit.records import AuditFilter, list_records
from hounsfield.web.app import create_app
from hounsfield.web.audit import classify
from tests.audit.helpers import recorded
from tests.auth.conftest import FILE, OTHER, PASSWORD, add_people, auth_archive
from tests.data import local


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Archive, TestClient, dict[str, str]]]:
    """A node asking remote callers to log in, with one study and a user of each role."""
    arch = auth_archive(tmp_path)
    assert import_file(arch, local(FILE)).outcome != "rejected"
    secrets = add_people(arch)
    with TestClient(create_app(arch)) as client:
        yield arch, client, secrets
    arch.close()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_logins_logouts_and_failed_logins(node: tuple[Archive, TestClient, dict[str, str]]) -> None:
    arch, client, _ = node
    wrong = client.post("/ui/login", data={"name": "rad", "password": "guess"})
    assert wrong.status_code == 401
    good = client.post(
        "/ui/login", data={"name": "rad", "password": PASSWORD}, follow_redirects=False
    )
    assert good.status_code == 303
    assert client.post("/ui/logout", follow_redirects=False).status_code == 303
    kinds = [(r.event, r.user, r.outcome) for r in recorded(arch)]
    assert ("login-failed", "rad", MINOR_FAILURE) in kinds
    assert ("login", "rad", SUCCESS) in kinds
    assert ("logout", "rad", SUCCESS) in kinds
    assert all(r.host == "testclient" for r in recorded(arch, event="login"))


def test_dicomweb_reads_are_recorded_per_user_and_study(
    node: tuple[Archive, TestClient, dict[str, str]],
) -> None:
    arch, client, secrets = node
    ds = dcmread(local(FILE), stop_before_pixels=True)
    study = str(ds.StudyInstanceUID)
    rad = _bearer(secrets["rad"])
    assert client.get("/dicomweb/studies?PatientID=" + str(ds.PatientID), headers=rad).is_success
    for _ in range(3):
        assert client.get(f"/dicomweb/studies/{study}/metadata", headers=rad).is_success
    [query] = recorded(arch, event="query")
    assert (query.user, query.protocol, query.partition) == ("rad", "DICOMweb", "HOUNSFIELD")
    assert query.detail == f"QIDO-RS studies?PatientID={ds.PatientID}"
    [retrieve] = recorded(arch, event="retrieve")
    assert (retrieve.user, retrieve.study_uid, retrieve.count) == ("rad", study, 3)
    assert retrieve.patient_id == str(ds.PatientID)  # named from the index


def test_refusals_and_bad_credentials_are_security_alerts(
    node: tuple[Archive, TestClient, dict[str, str]],
) -> None:
    arch, client, secrets = node
    rad = _bearer(secrets["rad"])
    assert client.get(f"/dicomweb/aets/{OTHER}/studies", headers=rad).status_code == 403
    assert client.get("/admin/queue", headers=rad).status_code == 403
    assert client.get("/dicomweb/studies", headers=_bearer("hf_forged")).status_code == 401
    assert client.get("/dicomweb/studies").status_code == 401  # no credentials: only asked
    alerts = recorded(arch, event="security-alert")
    assert [(a.user, a.outcome) for a in alerts] == [
        ("rad", MINOR_FAILURE),
        ("rad", MINOR_FAILURE),
        ("unknown", MINOR_FAILURE),
    ]
    assert f"may not reach {OTHER}" in alerts[0].detail
    assert "may not admin.read" in alerts[1].detail
    assert "/dicomweb/studies" in alerts[2].detail


def test_configuration_changes_name_their_user(
    node: tuple[Archive, TestClient, dict[str, str]],
) -> None:
    arch, client, secrets = node
    root = _bearer(secrets["root"])
    body = {"host": "10.0.0.9", "port": 104}
    assert client.put("/admin/devices/PACS", json=body, headers=root).is_success
    assert client.put("/admin/devices/PACS", json=body, headers=root).is_success  # unchanged
    assert client.put("/admin/devices/PACS", json={**body, "port": 11112}, headers=root).is_success
    assert client.delete("/admin/devices/PACS", headers=root).is_success
    changes = [r for r in recorded(arch, event="config") if "PACS" in r.detail]
    assert [(r.user, r.protocol, r.detail) for r in changes] == [
        ("root", "HTTP", "device PACS added"),
        ("root", "HTTP", "device PACS changed"),
        ("root", "HTTP", "device PACS removed"),
    ]


def test_only_admins_read_the_trail_and_reading_is_recorded(
    node: tuple[Archive, TestClient, dict[str, str]],
) -> None:
    arch, client, secrets = node
    trail.flush(arch.engine)  # the set-up's records are written by a background thread
    assert client.get("/admin/audit", headers=_bearer(secrets["oper"])).status_code == 403
    answer = client.get("/admin/audit?event=config&limit=5", headers=_bearer(secrets["root"]))
    assert answer.status_code == 200
    rows = answer.json()
    assert rows and all(r["event"] == "config" for r in rows)
    assert {"user", "host", "patient_id", "study_uid", "outcome_text"} <= set(rows[0])
    assert (
        client.get("/admin/audit?event=nonsense", headers=_bearer(secrets["root"])).status_code
        == 400
    )
    recent = client.get("/admin/audit?since=1h&until=2999-01-01", headers=_bearer(secrets["root"]))
    assert recent.status_code == 200 and recent.json()
    assert (
        client.get("/admin/audit?since=2999-01-01", headers=_bearer(secrets["root"])).json() == []
    )
    bad = client.get("/admin/audit?since=yesterday", headers=_bearer(secrets["root"]))
    assert bad.status_code == 400 and "since: not a time" in bad.text
    page = client.get("/ui/audit?event=config", headers=_bearer(secrets["root"]))
    assert page.status_code == 200 and "user rad added (radiologist" in page.text
    trail.flush(arch.engine)
    reads = list_records(arch.engine, AuditFilter(event="audit-read", user="root"))
    assert len(reads) >= 2 and all(r.host == "testclient" for r in reads)
    assert any("event=config" in r.detail for r in reads)


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/dicomweb/studies", "PatientID=7", ("query", "HOUNSFIELD", "")),
        ("GET", "/dicomweb/aets/CLINIC/studies/1.2/series", "", ("query", "CLINIC", "1.2")),
        (
            "GET",
            "/dicomweb/studies/1.2/series/3/instances/4/frames/1",
            "",
            ("retrieve", "HOUNSFIELD", "1.2"),
        ),
        ("GET", "/dicomweb/aets/CLINIC/studies/1.2/rendered", "", ("retrieve", "CLINIC", "1.2")),
        (
            "GET",
            "/dicomweb",
            "requestType=WADO&studyUID=1.2&seriesUID=3&objectUID=4",
            ("retrieve", "HOUNSFIELD", "1.2"),
        ),
        ("GET", "/dicomweb/wado", "requestType=WADO&studyUID=9", ("retrieve", "HOUNSFIELD", "9")),
        ("GET", "/dicomweb", "", None),
        ("POST", "/dicomweb/studies", "", None),  # recorded by the archive's store
        ("DELETE", "/dicomweb/studies/1.2", "", None),  # recorded by the archive's delete
        ("GET", "/admin/queue", "", None),
    ],
)
def test_which_requests_are_dicomweb_reads(
    method: str, path: str, query: str, expected: tuple[str, str, str] | None
) -> None:
    found = classify(method, path, query, "HOUNSFIELD")
    assert (None if found is None else (found.kind, found.partition, found.study_uid)) == expected


def test_failed_logins_lock_the_name_for_a_while(tmp_path: Path) -> None:
    arch = auth_archive(tmp_path, login_max_failures=3, login_lock_seconds=60)
    add_people(arch)
    try:
        with TestClient(create_app(arch)) as client:
            for _ in range(3):
                assert (
                    client.post("/ui/login", data={"name": "rad", "password": "x"}).status_code
                    == 401
                )
            locked = client.post("/ui/login", data={"name": "rad", "password": PASSWORD})
            assert locked.status_code == 429 and "Too many failed logins" in locked.text
            other = client.post(
                "/ui/login", data={"name": "root", "password": PASSWORD}, follow_redirects=False
            )
            assert other.status_code == 303  # another name from the address: not locked
        [alert] = recorded(arch, event="security-alert")
        assert alert.user == "rad" and "too many failed logins" in alert.detail
        assert len(recorded(arch, event="login-failed")) == 3
    finally:
        arch.close()
