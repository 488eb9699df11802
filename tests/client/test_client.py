"""The cluster client against real peers: failover, resume, balancing, affinity, retrieves."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from hounsfield.archive.context import Archive
from hounsfield.client import Client
from hounsfield.dimse.server import DimseServer
from hounsfield.errors import PeerUnreachable
from hounsfield.sites.devices import Device, add_device
from tests.client.peers import CountingSCP, Silent, closed_port
from tests.conftest import make_archive, make_settings
from tests.synth import instance, put, write_part10

Node = tuple[Archive, DimseServer]


def _start(tmp_path: Path, name: str, ae_title: str = "HOUNSFIELD") -> Node:
    settings = make_settings(tmp_path / name, None, ae_title=ae_title)  # type: ignore[arg-type]
    archive = make_archive(settings)
    server = DimseServer(archive)
    server.start()
    return archive, server


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A Hounsfield node (SQLite) serving DIMSE as HOUNSFIELD."""
    started = _start(tmp_path, "node")
    yield started
    started[1].stop(grace_seconds=2)
    started[0].close()


def _files(folder: Path, count: int, study: str | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    study = study or generate_uid()
    series = generate_uid()
    out: list[Path] = []
    for n in range(count):
        ds = instance(StudyInstanceUID=study, SeriesInstanceUID=series, InstanceNumber=n + 1)
        path = folder / f"{study[-6:]}-{n}.dcm"
        write_part10(ds, path)
        out.append(path)
    return out


def _sops(paths: list[Path]) -> list[str]:
    return [str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths]


def _client(*ports: int, **kwargs: object) -> Client:
    options: dict[str, object] = {"association_timeout": 3.0, "receive_timeout": 3.0}
    options.update(kwargs)
    return Client([f"127.0.0.1:{p}" for p in ports], **options)  # type: ignore[arg-type]


def _indexed(archive: Archive, sops: list[str]) -> bool:
    from sqlalchemy import func, select

    from hounsfield.db.tables import instance as instance_table

    with archive.engine.connect() as conn:
        found = conn.scalar(
            select(func.count())
            .select_from(instance_table)
            .where(instance_table.c.sop_iuid.in_(sops))
        )
    return found == len(sops)


def test_send_fails_over_from_a_refused_connection(node: Node, tmp_path: Path) -> None:
    files = _files(tmp_path / "in", 5)
    client = _client(closed_port(), node[1].port)
    report = client.send(files)
    assert report.ok and len(report.sent) == 5 and report.failovers == 1
    assert set(report.per_node()) == {f"127.0.0.1:{node[1].port}"}
    assert _indexed(node[0], _sops(files))


def test_send_fails_over_from_a_node_that_rejects_the_association(
    node: Node, tmp_path: Path
) -> None:
    other = _start(tmp_path, "other", ae_title="OTHER")  # refuses the called AE HOUNSFIELD
    try:
        files = _files(tmp_path / "in", 3)
        report = _client(other[1].port, node[1].port).send(files)
    finally:
        other[1].stop(grace_seconds=2)
        other[0].close()
    assert report.ok and report.failovers == 1
    assert _indexed(node[0], _sops(files))


def test_send_fails_over_from_a_node_that_never_answers(node: Node, tmp_path: Path) -> None:
    silent = Silent()
    try:
        report = _client(silent.port, node[1].port, association_timeout=1.0).send(
            _files(tmp_path / "in", 2)
        )
    finally:
        silent.stop()
    assert report.ok and report.failovers == 1


def test_an_abort_mid_send_resumes_at_the_first_unacknowledged_instance(tmp_path: Path) -> None:
    files = _files(tmp_path / "in", 10)
    sops = _sops(files)
    first, second = CountingSCP(abort_at=4), CountingSCP()
    try:
        report = _client(first.port, second.port).send(files)
    finally:
        first.stop()
        second.stop()
    assert report.ok and report.failovers == 1
    assert first.received == sops[:4]  # three acknowledged, the fourth in flight
    assert second.received == sops[3:]  # the one in flight again, then the rest
    assert {
        sop: node for sop, (node, _s) in report.sent.items() if node.endswith(str(first.port))
    } == dict.fromkeys(sops[:3], f"127.0.0.1:{first.port}")


def test_a_response_timeout_mid_send_resumes_on_the_next_node(tmp_path: Path) -> None:
    files = _files(tmp_path / "in", 6)
    sops = _sops(files)
    first, second = CountingSCP(stall_at=2, stall=3.0), CountingSCP()
    try:
        report = _client(first.port, second.port, receive_timeout=1.0).send(files)
    finally:
        first.stop()
        second.stop()
    assert report.ok and report.failovers == 1
    assert first.received == sops[:2]
    assert second.received == sops[1:]


def test_new_associations_are_balanced_and_a_failed_node_waits_its_quarantine(
    tmp_path: Path,
) -> None:
    a, b = CountingSCP(), CountingSCP()
    dead = closed_port()
    try:
        client = _client(a.port, b.port, dead, quarantine=60.0)
        files = _files(tmp_path / "in", 6)
        report = client.send(files, associations=3)  # three shares, one per node in turn
        assert report.ok and report.failovers == 1  # the dead node's share went elsewhere
        assert sorted(report.per_node().values()) == [2, 4]
        for n in range(4):  # later associations skip the dead node: no failover
            assert client.send(_files(tmp_path / f"more{n}", 1)).failovers == 0
        assert client.ring.resting() == [f"127.0.0.1:{dead}"]
        assert a.associations + b.associations == 7 and abs(a.associations - b.associations) == 1
        finds = Client([f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"])
        for _ in range(4):
            finds.echo()
    finally:
        a.stop()
        b.stop()
    assert a.associations + b.associations == 11


def test_a_failed_node_is_tried_again_after_its_quarantine(node: Node, tmp_path: Path) -> None:
    clock = [0.0]
    client = _client(node[1].port, closed_port(), quarantine=5.0)
    client.ring._clock = lambda: clock[0]
    dead = client.ring.nodes[1]
    client.ring.failed(dead)
    assert [client.ring.order()[-1] for _ in range(3)] == [dead] * 3
    clock[0] = 6.0
    assert dead in {client.ring.order()[0] for _ in range(2)}


def test_affinity_keeps_each_study_on_the_node_its_uid_picks(tmp_path: Path) -> None:
    a, b = CountingSCP(), CountingSCP()
    studies = [generate_uid() for _ in range(4)]
    files = [f for n, s in enumerate(studies) for f in _files(tmp_path / f"s{n}", 3, s)]
    try:
        client = _client(a.port, b.port, affinity=True)
        report = client.send(files, associations=2)
        again = client.send(_files(tmp_path / "again", 2, studies[0]))
    finally:
        a.stop()
        b.stop()
    assert report.ok and again.ok
    ports = [a.port, b.port]
    for n, study in enumerate(studies):
        sops = _sops(sorted((tmp_path / f"s{n}").iterdir()))
        expected = f"127.0.0.1:{ports[zlib.crc32(study.encode()) % 2]}"
        assert {report.sent[s][0] for s in sops} == {expected}
    first = f"127.0.0.1:{ports[zlib.crc32(studies[0].encode()) % 2]}"
    assert set(again.per_node()) == {first}


def test_an_affine_study_moves_to_the_next_node_when_its_own_is_down(
    node: Node, tmp_path: Path
) -> None:
    dead = closed_port()
    study = next(s for s in iter(generate_uid, None) if zlib.crc32(s.encode()) % 2 == 0)
    report = _client(dead, node[1].port, affinity=True).send(_files(tmp_path, 3, study))
    assert report.ok and report.failovers == 1


def test_send_reports_what_is_not_dicom_and_sends_the_rest(node: Node, tmp_path: Path) -> None:
    files = _files(tmp_path / "in", 2)
    (tmp_path / "in" / "notes.txt").write_text("not DICOM")
    ds = instance()
    report = _client(node[1].port).send([tmp_path / "in", ds])  # a folder and a dataset
    assert len(report.sent) == 3 and list(report.failed) == [str(tmp_path / "in" / "notes.txt")]
    assert _indexed(node[0], [*_sops(files), str(ds.SOPInstanceUID)])
    assert not hasattr(ds, "file_meta")  # the caller's dataset is left as it was


def test_every_node_down_fails_the_send_with_the_reason(tmp_path: Path) -> None:
    report = _client(closed_port(), closed_port()).send(_files(tmp_path, 3))
    assert len(report.failed) == 3 and not report.sent
    assert all("cannot connect" in why for why in report.failed.values())
    with pytest.raises(PeerUnreachable):
        _client(closed_port()).find({"PatientID": "X"})


def test_find_get_and_move_through_a_failing_first_node(node: Node, tmp_path: Path) -> None:
    archive, server = node
    study, series_uid = generate_uid(), generate_uid()
    sops = []
    for n in range(3):
        ds = instance(
            StudyInstanceUID=study,
            SeriesInstanceUID=series_uid,
            InstanceNumber=n + 1,
            PatientID="FAILOVER",
        )
        put(archive, ds)
        sops.append(str(ds.SOPInstanceUID))
    dest = CountingSCP("DEST")
    add_device(archive, Device("DEST", "127.0.0.1", dest.port))
    dead = closed_port()

    def client() -> Client:  # its first association goes to the dead node
        return _client(dead, server.port, quarantine=0.0)

    try:
        finder = client()
        found = finder.find({"PatientID": "FAILOVER", "StudyInstanceUID": ""})
        assert [str(ds.StudyInstanceUID) for ds in found] == [study]
        assert finder.failovers == 1
        series = client().find({"StudyInstanceUID": study, "SeriesInstanceUID": ""}, "SERIES")
        assert len(series) == 1
        ct = str(instance().SOPClassUID)
        got = client().get({"StudyInstanceUID": study}, tmp_path / "got", sop_classes=[ct])
        assert got.ok and got.result.completed == 3 and got.failovers == 1
        assert sorted(str(dcmread(f).SOPInstanceUID) for f in got.files) == sorted(sops)
        asked = client().get({"StudyInstanceUID": study}, tmp_path / "asked")  # classes by C-FIND
        assert asked.ok and len(asked.files) == 3
        moved = client().move({"StudyInstanceUID": study}, "DEST")
        assert moved.ok and moved.result.completed == 3 and moved.failovers == 1
        assert moved.node == f"127.0.0.1:{server.port}"
    finally:
        dest.stop()
    assert sorted(dest.received) == sorted(sops)
