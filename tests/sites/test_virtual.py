"""A virtual partition over two local partitions and a remote peer: C-FIND, C-MOVE, C-GET,
QIDO-RS and WADO-RS answered for all members."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, generate_uid

from hounsfield.archive.context import Archive
from hounsfield.archive.query import locate
from hounsfield.catalog import partitions
from hounsfield.db import engine as db
from hounsfield.dicomnet.operations import find, get, move
from hounsfield.dicomnet.peer import Peer
from hounsfield.dimse.server import DimseServer
from hounsfield.errors import InvalidDataset, VirtualPartition
from hounsfield.sites.devices import Device, add_device
from tests.audit.helpers import recorded
from tests.dcmtk import StoreSCP
from tests.sites.peers import second_node
from tests.synth import instance, put


def _study(archive: Archive, count: int, partition: str, study: str | None = None) -> list[str]:
    uid, series = study or generate_uid(), generate_uid()
    sops = []
    for n in range(count):
        ds = instance(StudyInstanceUID=uid, SeriesInstanceUID=series, InstanceNumber=n + 1)
        put(archive, ds, partition=partition)
        sops.append(str(ds.SOPInstanceUID))
    return sops


class Clinics:
    """HQ with local partitions A and B and a virtual ALL over A, B and the peer CLINIC."""

    def __init__(self, archive: Archive, tmp_path: Path) -> None:
        self.archive = archive
        self.peer, self.peer_server = second_node(tmp_path, "CLINIC")
        with db.write(archive.engine) as conn:
            partitions.add(conn, "A")
            partitions.add(conn, "B")
            partitions.add(conn, "CACHE")
        add_device(archive, Device("CLINIC", "127.0.0.1", self.peer_server.port))
        with db.write(archive.engine) as conn:
            partitions.add(
                conn,
                "ALL",
                kind="virtual",
                members=["A", "B", "device:CLINIC"],
                cache_to="CACHE",
                member_timeout=2.0,
            )
        archive.forget_partitions()
        self.server = DimseServer(archive)
        self.server.start()
        self.studies: dict[str, str] = {}
        for name, holder, part in (
            ("a", archive, "A"),
            ("b", archive, "B"),
            ("c", self.peer, None),
        ):
            uid = generate_uid()
            _study(holder, 2, part or "CLINIC", uid)
            self.studies[name] = uid
        both = generate_uid()  # held by A and by the peer: answered once
        _study(archive, 1, "A", both)
        _study(self.peer, 1, "CLINIC", both)
        self.studies["both"] = both

    def virtual(self) -> Peer:
        return Peer("ALL", "127.0.0.1", self.server.port)

    def close(self) -> None:
        self.server.stop(1)
        self.peer_server.stop(1)
        self.peer.close()


@pytest.fixture
def clinics(archive: Archive, tmp_path: Path) -> Iterator[Clinics]:
    made = Clinics(archive, tmp_path)
    yield made
    made.close()


def _study_query(uid: str = "") -> Dataset:
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = uid
    q.RetrieveAETitle = ""
    return q


def test_find_returns_the_union_once(clinics: Clinics) -> None:
    found = list(find(clinics.virtual(), clinics.archive.settings, _study_query()))
    uids = [str(d.StudyInstanceUID) for d in found]
    assert sorted(uids) == sorted(clinics.studies.values())
    assert {str(d.RetrieveAETitle) for d in found} == {"ALL"}


def test_find_answers_promptly_without_a_silent_member(clinics: Clinics) -> None:
    silent = socket.socket()  # accepts connections and never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    add_device(clinics.archive, Device("CLINIC", "127.0.0.1", silent.getsockname()[1]))
    try:
        started = time.monotonic()
        found = list(find(clinics.virtual(), clinics.archive.settings, _study_query()))
        took = time.monotonic() - started
    finally:
        silent.close()
    local = {clinics.studies[k] for k in ("a", "b", "both")}
    assert {str(d.StudyInstanceUID) for d in found} == local
    assert took < 2.0 + 2.0  # the member's 2 s, plus little


def test_move_of_a_study_only_the_peer_holds(clinics: Clinics, tmp_path: Path) -> None:
    scp = StoreSCP(tmp_path / "viewer", "VIEWER")
    add_device(clinics.archive, Device("VIEWER", "127.0.0.1", scp.port))
    try:
        result = move(
            clinics.virtual(),
            clinics.archive.settings,
            _study_query(clinics.studies["c"]),
            "VIEWER",
        )
    finally:
        scp.stop()
    assert (result.status, result.completed, result.failed) == (0x0000, 2, 0)
    assert len(list(scp.folder.iterdir())) == 2
    cached = Dataset()
    cached.QueryRetrieveLevel = "STUDY"
    cached.StudyInstanceUID = clinics.studies["c"]
    assert len(locate(clinics.archive, cached, partition="CACHE")) == 2  # kept, by policy
    stored = recorded(clinics.archive, event="store", partition="CACHE")
    assert {(r.user, r.protocol, r.host, r.called) for r in stored} == {
        ("CLINIC", "DICOM", "127.0.0.1", "CACHE")  # sent by the member, not by "system"
    }
    assert sum(r.count for r in stored) == 2


def test_get_counts_what_the_member_did_not_deliver(clinics: Clinics) -> None:
    uid = generate_uid()
    sops = _study(clinics.peer, 3, "CLINIC", uid)
    ident = Dataset()
    ident.QueryRetrieveLevel = "IMAGE"
    ident.SOPInstanceUID = sops[1]
    (lost,) = locate(clinics.peer, ident, partition="CLINIC")
    lost.path.unlink()  # the peer lists it, but cannot send it
    got: list[str] = []

    def on_store(received: object) -> None:
        got.append(received.sop_instance)  # type: ignore[attr-defined]

    result = get(
        clinics.virtual(),
        clinics.archive.settings,
        _study_query(uid),
        on_store,
        [CTImageStorage],
    )
    assert (result.completed, result.failed) == (2, 1)
    assert sorted(got) == sorted([sops[0], sops[2]])


def test_qido_and_wado_through_the_virtual_partition(clinics: Clinics) -> None:
    import uvicorn

    from hounsfield.web.app import create_app

    config = uvicorn.Config(
        create_app(clinics.archive), host="127.0.0.1", port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/dicomweb/aets/ALL"
    try:
        studies = httpx.get(f"{base}/studies", timeout=30).json()
        assert sorted(s["0020000D"]["Value"][0] for s in studies) == sorted(
            clinics.studies.values()
        )
        answer = httpx.get(
            f"{base}/studies/{clinics.studies['c']}",
            headers={"Accept": 'multipart/related; type="application/dicom"'},
            timeout=30,
        )
        assert answer.status_code == 200
        assert answer.content.count(b"Content-Type: application/dicom") == 2
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_virtual_partition_holds_nothing_and_names_real_members(clinics: Clinics) -> None:
    with pytest.raises(VirtualPartition):
        put(clinics.archive, instance(), partition="ALL")
    with db.write(clinics.archive.engine) as conn, pytest.raises(InvalidDataset):
        partitions.add(conn, "BAD", kind="virtual", members=["device:NOBODY"])
    with db.write(clinics.archive.engine) as conn, pytest.raises(InvalidDataset):
        partitions.add(conn, "BAD2", kind="virtual", members=["ALL"])  # not a local partition


def test_cli_manages_virtual_partitions(archive: Archive) -> None:
    import json

    from typer.testing import CliRunner

    from hounsfield.cli import app

    s = archive.settings
    env = {"HOUNSFIELD_DATA_DIR": str(s.data_dir), "HOUNSFIELD_DATABASE_URL": s.sqlalchemy_url}

    def run(*args: str) -> str:
        result = CliRunner().invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    add_device(archive, Device("PACS", "127.0.0.1", 104))
    run("partition", "add", "A")
    run("partition", "add", "CACHE")
    added = run(
        "partition", "add", "ALL", "--virtual", "--member", "A", "--member", "device:PACS",
        "--cache-to", "CACHE", "--member-timeout", "3",
    )  # fmt: skip
    assert "added virtual partition ALL" in added
    run("partition", "set", "ALL", "--member", "device:PACS", "--member", "A", "--no-cache")
    rows = {r["ae_title"]: r for r in json.loads(run("partition", "list", "--json"))}
    assert rows["ALL"]["kind"] == "virtual"
    assert rows["ALL"]["members"] == ["device:PACS", "A"] and rows["ALL"]["cache_to"] is None
    refused = CliRunner().invoke(app, ["partition", "remove", "A"], env=env)
    assert refused.exit_code != 0 and "uses A" in refused.output
