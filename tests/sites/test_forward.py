"""Forwarding with real peers: by hand and by rules, durable state, retries, commitment, STOW."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian, JPEGLSLossless, generate_uid
from sqlalchemy import select

from hounsfield.alerts import list_alerts
from hounsfield.archive.context import Archive
from hounsfield.archive.importer import import_file
from hounsfield.archive.query import locate
from hounsfield.db import engine as db
from hounsfield.db.tables import work_item
from hounsfield.dimse.server import DimseServer
from hounsfield.rules.model import Rule, parse_condition
from hounsfield.rules.saved import save_rule
from hounsfield.sites.devices import Device, add_device
from hounsfield.sites.forward import forward_studies, retry_failed
from hounsfield.sites.forward_state import Forward, list_forwards
from hounsfield.sites.links import POOL
from hounsfield.workers.runner import Worker
from hounsfield.workqueue.items import now
from tests.conftest import make_archive, make_settings
from tests.data import local
from tests.dcmtk import StoreSCP, free_port
from tests.orthanc import Orthanc
from tests.sites.peers import StoreCommitSCP, second_node
from tests.synth import instance, put


@pytest.fixture(autouse=True)
def _no_lingering_links() -> Iterator[None]:
    yield
    POOL.close_all()


def _study(archive: Archive, count: int, **attrs: object) -> tuple[str, list[str]]:
    """A study of `count` synthetic instances; its UID and the SOP Instance UIDs."""
    study, series = generate_uid(), generate_uid()
    sops = []
    for n in range(count):
        ds = instance(StudyInstanceUID=study, SeriesInstanceUID=series, InstanceNumber=n + 1)
        for key, value in attrs.items():
            setattr(ds, key, value)
        put(archive, ds)
        sops.append(str(ds.SOPInstanceUID))
    return study, sops


def _drain(archive: Archive) -> None:
    Worker(archive, threads=2, processes=0).run_until_idle()


def _one(archive: Archive, study: str) -> Forward:
    rows = list_forwards(archive.engine, study=study)
    assert len(rows) == 1, rows
    return rows[0]


def _wait_for(check: object, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_forward_by_hand_to_storescp_sends_each_instance_once(
    archive: Archive, tmp_path: Path
) -> None:
    study, sops = _study(archive, 5)
    scp = StoreSCP(tmp_path / "got")
    add_device(archive, Device("STORESCP", "127.0.0.1", scp.port))
    try:
        assert forward_studies(archive, "STORESCP", study=study) == [study]
        _drain(archive)
        first = _one(archive, study)
        assert (first.state, first.sent, first.instances) == ("sent", 5, 5)
        forward_studies(archive, "STORESCP", study=study)  # asked again: nothing new to send
        _drain(archive)
    finally:
        scp.stop()
    assert sorted(p.name.split(".", 1)[1] for p in scp.folder.iterdir()) == sorted(sops)
    again = _one(archive, study)
    assert (again.state, again.sent, again.attempts) == ("sent", 5, 2)


def test_stored_bytes_go_as_they_are_or_transcoded_when_refused(
    archive: Archive, tmp_path: Path
) -> None:
    path = local("MR_small_jpeg_ls_lossless.dcm")
    assert import_file(archive, path).outcome == "stored"
    study = str(dcmread(path, stop_before_pixels=True).StudyInstanceUID)
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study
    (stored,) = locate(archive, query)
    assert stored.transfer_syntax == JPEGLSLossless
    takes_all = StoreSCP(tmp_path / "all", "ALL")
    plain = StoreSCP(tmp_path / "plain", "PLAIN", accept="+xi")  # implicit VR only
    try:
        for dest in (takes_all, plain):
            add_device(archive, Device(dest.ae_title, "127.0.0.1", dest.port))
            forward_studies(archive, dest.ae_title, study=study)
        _drain(archive)
    finally:
        takes_all.stop()
        plain.stop()
    for dest, syntax in ((takes_all, JPEGLSLossless), (plain, ImplicitVRLittleEndian)):
        (got,) = dest.folder.iterdir()
        assert dcmread(got).file_meta.TransferSyntaxUID == syntax


def test_one_association_carries_consecutive_studies_and_several_run_when_allowed(
    archive: Archive,
) -> None:
    studies = [_study(archive, 3)[0] for _ in range(3)]
    big, _ = _study(archive, 12)
    dest = StoreCommitSCP("DEST")
    wide = StoreCommitSCP("WIDE")
    add_device(archive, Device("DEST", "127.0.0.1", dest.port))
    add_device(archive, Device("WIDE", "127.0.0.1", wide.port, associations=3))
    try:
        for uid in studies:
            forward_studies(archive, "DEST", study=uid)
        Worker(archive, threads=1, processes=0).run_until_idle()
        forward_studies(archive, "WIDE", study=big)
        _drain(archive)
    finally:
        dest.stop()
        wide.stop()
    assert sum(dest.seen.stores.values()) == 9
    assert dest.seen.associations == 1  # kept open for the next study
    assert dest.seen.callers == ["HOUNSFIELD"]
    assert sum(wide.seen.stores.values()) == 12
    assert wide.seen.most_at_once == 3


def test_commitment_refused_instances_are_sent_again(archive: Archive) -> None:
    study, sops = _study(archive, 4)
    refused = sops[1]
    dest = StoreCommitSCP("DEST", refuse=lambda uid, attempt: uid == refused and attempt == 1)
    add_device(archive, Device("DEST", "127.0.0.1", dest.port, commitment=True))
    server = DimseServer(archive)  # in case a report comes on a new association
    server.start()
    try:
        forward_studies(archive, "DEST", study=study)
        _wait_for(lambda: (_drain(archive), _one(archive, study).state == "committed")[1])
    finally:
        server.stop(1)
        dest.stop()
    assert dest.seen.stores[refused] == 2
    assert all(dest.seen.stores[s] == 1 for s in sops if s != refused)
    assert dest.seen.commitments[1] == [refused]  # only what was refused is asked again
    done = _one(archive, study)
    assert (done.sent, done.committed, done.refused) == (4, 4, 0)


def test_forward_to_another_hounsfield_node_with_commitment(
    archive: Archive, tmp_path: Path
) -> None:
    study, sops = _study(archive, 6)
    hq, hq_server = second_node(tmp_path)
    here = DimseServer(archive)
    here.start()
    add_device(archive, Device("HQ", "127.0.0.1", hq_server.port, commitment=True))
    add_device(hq, Device("HOUNSFIELD", "127.0.0.1", here.port))
    try:
        forward_studies(archive, "HQ", study=study)
        _wait_for(lambda: (_drain(archive), _one(archive, study).state == "committed")[1])
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = study
        assert sorted(o.sop_instance for o in locate(hq, query)) == sorted(sops)
    finally:
        here.stop(1)
        hq_server.stop(1)
        hq.close()


def test_destination_down_backs_off_drains_then_dead_letters_and_retries(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        forward_retry_seconds=0.3,
        forward_retry_max_seconds=1.0,
        forward_max_attempts=3,
        connect_timeout=2.0,
    )
    archive = make_archive(settings)
    port = free_port()
    add_device(archive, Device("LATER", "127.0.0.1", port))
    study, _sops = _study(archive, 3)
    worker = Worker(archive, threads=1, processes=0)
    try:
        forward_studies(archive, "LATER", study=study)
        delays = []
        for _ in range(2):
            assert worker.run_one() is not None
            with db.read(archive.engine) as conn:
                row = conn.execute(
                    select(work_item.c.scheduled_at, work_item.c.updated_at).where(
                        work_item.c.kind == "forward-study"
                    )
                ).one()
            delays.append((row[0] - row[1]).total_seconds())
            assert _one(archive, study).state == "pending"
            time.sleep(delays[-1] + 0.05)
        assert 0.2 < delays[0] < 0.4 and 0.45 < delays[1] < 0.75  # exponential, with jitter
        dest = StoreCommitSCP("LATER", port=port)  # the link is back: the backlog drains
        try:
            _drain(archive)
            assert _one(archive, study).state == "sent"
            assert sum(dest.seen.stores.values()) == 3
        finally:
            dest.stop()
            POOL.close_all()  # the link lingering for the next study goes down with it

        other, _ = _study(archive, 2)
        forward_studies(archive, "LATER", study=other)
        for _ in range(3):
            _wait_for(lambda: worker.run_one() is not None, 5)
        dead = _one(archive, other)
        assert dead.state == "failed" and dead.attempts == 3 and "connect" in dead.last_error
        assert any("forward-study" in a.source for a in list_alerts(archive.engine, 20))
        assert [f.pk for f in retry_failed(archive, destination="LATER")] == [dead.pk]
        dest = StoreCommitSCP("LATER", port=port)
        try:
            _drain(archive)
        finally:
            dest.stop()
        assert _one(archive, other).state == "sent"
    finally:
        archive.close()


def test_forward_rules_on_receipt_and_in_a_window(archive: Archive, server: DimseServer) -> None:
    dest = StoreCommitSCP("HQ")
    add_device(archive, Device("HQ", "127.0.0.1", dest.port))
    add_device(archive, Device("NIGHT", "127.0.0.1", dest.port))
    save_rule(
        archive.engine,
        Rule(
            "ct-to-hq",
            "forward",
            conditions=(parse_condition("Modality=CT"),),
            params={"destinations": ["HQ"], "trigger": "receipt"},
        ),
    )
    closed = now() + timedelta(hours=3)
    window = f"{closed.astimezone():%H:%M}-{(closed + timedelta(hours=1)).astimezone():%H:%M}"
    save_rule(
        archive.engine,
        Rule("nightly", "forward", params={"destinations": "NIGHT", "window": window}),
    )
    archive.forget_partitions()
    ct, _ = _study(archive, 2)
    mr, _ = _study(archive, 1, Modality="MR")
    try:
        time.sleep(archive.settings.forward_receipt_delay_seconds + 0.2)
        _drain(archive)
    finally:
        dest.stop()
    assert sum(dest.seen.stores.values()) == 2  # the CT study, on receipt; not the MR one
    assert _one(archive, ct).reason == "ct-to-hq"
    assert not list_forwards(archive.engine, study=mr)
    # the settled trigger queues the nightly forward, which waits for its window
    from hounsfield.sites.forward import route_study

    assert route_study(archive, "HOUNSFIELD", mr, "settled") == ["NIGHT (nightly)"]
    with db.read(archive.engine) as conn:
        at = conn.scalar(
            select(work_item.c.scheduled_at).where(
                work_item.c.kind == "forward-study", work_item.c.status == "pending"
            )
        )
    assert at is not None and timedelta(hours=2) < at.replace(tzinfo=now().tzinfo) - now()


def test_stow_forward_to_a_dicomweb_peer(archive: Archive, web_peer: tuple[Archive, str]) -> None:
    peer, url = web_peer
    study, sops = _study(archive, 5)
    add_device(archive, Device("WEB", "127.0.0.1", 104, protocol="dicomweb", url=url))
    forward_studies(archive, "WEB", study=study)
    _drain(archive)
    assert _one(archive, study).state == "sent"
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study
    assert sorted(o.sop_instance for o in locate(peer, query)) == sorted(sops)


@pytest.fixture
def web_peer(tmp_path: Path) -> Iterator[tuple[Archive, str]]:
    """A second node's DICOMweb over a real HTTP server."""
    import threading

    import uvicorn

    from hounsfield.web.app import create_app

    peer = make_archive(make_settings(tmp_path / "peer", None, ae_title="PEER"))  # type: ignore[arg-type]
    config = uvicorn.Config(create_app(peer), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _wait_for(lambda: server.started)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield peer, f"http://127.0.0.1:{port}/dicomweb"
    server.should_exit = True
    thread.join(timeout=10)
    peer.close()


def test_forward_to_orthanc_with_commitment_and_by_stow(archive: Archive, tmp_path: Path) -> None:
    here = DimseServer(archive)
    here.start()
    orthanc = Orthanc(tmp_path / "orthanc", modalities={"HOUNSFIELD": ("127.0.0.1", here.port)})
    committed, stowed = _study(archive, 4)[0], _study(archive, 3)[0]
    add_device(archive, Device("ORTHANC", "127.0.0.1", orthanc.port, commitment=True))
    url = f"{orthanc.url}/dicom-web"
    add_device(archive, Device("ORTHANCWEB", "127.0.0.1", 104, protocol="dicomweb", url=url))
    try:
        forward_studies(archive, "ORTHANC", study=committed)
        forward_studies(archive, "ORTHANCWEB", study=stowed)
        _wait_for(lambda: (_drain(archive), _one(archive, committed).state == "committed")[1], 60)
        assert _one(archive, stowed).state == "sent"
        held = orthanc.instances()
    finally:
        orthanc.stop()
        here.stop(1)
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    expected = set()
    for uid in (committed, stowed):
        query.StudyInstanceUID = uid
        expected |= {o.sop_instance for o in locate(archive, query)}
    assert held == expected
