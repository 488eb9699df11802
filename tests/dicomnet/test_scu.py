"""The SCU layer against real peers: DCMTK tools, pynetdicom AEs, sockets and our own server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGLSLossless,
    MRImageStorage,
    generate_uid,
)
from pynetdicom import AE, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

from hounsfield.archive.context import Archive
from hounsfield.archive.store import store
from hounsfield.dicomnet import operations
from hounsfield.dicomnet.contexts import (
    LITTLE_ENDIAN,
    MAX_CONTEXTS,
    batches,
    contexts_needed,
    query_contexts,
    storage_contexts,
)
from hounsfield.dicomnet.incoming import Received
from hounsfield.dicomnet.peer import Peer, Timeouts
from hounsfield.dicomnet.responses import Progress
from hounsfield.dicomnet.scu import PeerAssociation, associate
from hounsfield.dimse.server import DimseServer
from hounsfield.errors import (
    AssociationAborted,
    AssociationRejected,
    PeerFailed,
    PeerTimeout,
    PeerUnreachable,
    TooManyContexts,
)
from hounsfield.imaging.transcode import to_little_endian
from hounsfield.settings import Settings
from hounsfield.sites.devices import Device, add_device
from hounsfield.sites.peers import echo
from tests.conftest import make_archive, make_settings
from tests.data import dataset_bytes, local
from tests.dcmtk import Listener, free_port
from tests.synth import instance, put

SCU = Settings(ae_title="SCU", connect_timeout=2, association_timeout=2, dimse_timeout=5)
ABORTING = Settings(ae_title="ABORTME")  # the slow peer aborts when this AE calls
FIND_MODEL = str(StudyRootQueryRetrieveInformationModelFind)
IMPLICIT, EXPLICIT = "MR_small_implicit.dcm", "CT_small.dcm"
J2K, JLS = "JPEG2000.dcm", "emri_small_jpeg_ls_lossless.dcm"


@dataclass(frozen=True)
class File:
    """A Part-10 file to send, as the archive describes a stored object."""

    path: Path
    sop_class: str
    sop_instance: str
    transfer_syntax: str


def _file(name: str) -> File:
    path = local(name)
    ds = dcmread(path, stop_before_pixels=True)
    return File(path, ds.SOPClassUID, ds.SOPInstanceUID, ds.file_meta.TransferSyntaxUID)


class _StoreSCP(Listener):
    """A DCMTK storescp with chosen transfer syntax options, writing what it receives."""

    def __init__(self, folder: Path, *flags: str) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        args = ["storescp", "-aet", "STORESCP", *flags, "-pm", "+B", "-od", str(folder)]
        super().__init__(args, free_port())

    @property
    def peer(self) -> Peer:
        return Peer("STORESCP", "127.0.0.1", self.port)

    def received(self) -> dict[str, tuple[str, Path]]:
        """SOP Instance UID -> (transfer syntax, file) of what arrived."""
        out = {}
        for path in self.folder.iterdir():
            ds = dcmread(path, stop_before_pixels=True)
            out[str(ds.SOPInstanceUID)] = (str(ds.file_meta.TransferSyntaxUID), path)
        return out


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[_StoreSCP]:
    """storescp accepting every transfer syntax (`+xa`)."""
    scp = _StoreSCP(tmp_path / "received", "+xa")
    yield scp
    scp.stop()


def _ours(server: DimseServer) -> Peer:
    return Peer("HOUNSFIELD", "127.0.0.1", server.port)


def _ingest(archive: Archive, *names: str) -> list[File]:
    files = [_file(n) for n in names]
    for f in files:
        store(archive, f.transfer_syntax, dataset_bytes(f.path))
    return files


def _images(uids: list[str]) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.SOPInstanceUID = uids
    return query


# --- association set-up and its failures ------------------------------------------------


def test_echo_a_device(archive: Archive, server: DimseServer) -> None:
    add_device(archive, Device("HOUNSFIELD", "127.0.0.1", server.port))
    result = echo(archive, "HOUNSFIELD", timeout=5)
    assert (result.ae_title, result.port, result.status) == ("HOUNSFIELD", server.port, 0)
    assert 0 < result.seconds < 5
    assert operations.echo(_ours(server), SCU) == 0


def test_association_uses_our_title_pdu_timeouts_and_nodelay(server: DimseServer) -> None:
    peer = Peer("HOUNSFIELD", "127.0.0.1", server.port, association_timeout=7, dimse_timeout=9)
    settings = Settings(ae_title="SCU", max_pdu=262144, connect_timeout=3)
    with associate(peer, settings, query_contexts([str(Verification)])) as link:
        assoc = link.assoc
        assert assoc.requestor.ae_title == "SCU"
        assert assoc.requestor.maximum_length == 262144
        assert (assoc.connection_timeout, assoc.acse_timeout, assoc.dimse_timeout) == (3, 7, 9)
        sock = assoc.dul.socket.socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert link.echo() == 0
    assert assoc.is_released


def test_echo_to_a_closed_port_is_unreachable() -> None:
    with pytest.raises(PeerUnreachable, match="refused"):
        operations.echo(Peer("NOBODY", "127.0.0.1", free_port()), SCU)


def test_a_connect_that_hangs_times_out() -> None:
    with socket.socket() as listener, socket.socket() as first:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        first.connect(listener.getsockname())  # fills the backlog: the next SYN is dropped
        peer = Peer("FULL", "127.0.0.1", listener.getsockname()[1], connect_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(PeerTimeout) as caught:
            operations.echo(peer, SCU)
    assert caught.value.phase == "connect"
    assert time.monotonic() - started < 2


def test_silent_peer_times_out_in_association() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # connections complete in the kernel; nobody answers
        peer = Peer("SILENT", "127.0.0.1", listener.getsockname()[1], association_timeout=0.3)
        with pytest.raises(PeerTimeout) as caught:
            operations.echo(peer, SCU)
    assert caught.value.phase == "ACSE"


def test_unknown_caller_is_rejected(tmp_path: Path) -> None:
    archive = make_archive(
        make_settings(tmp_path, f"sqlite:///{tmp_path / 'i.db'}", caller_policy="known")
    )
    server = DimseServer(archive)
    server.start()
    try:
        with pytest.raises(AssociationRejected, match="Calling AE title not recognised") as e:
            operations.echo(_ours(server), SCU)
    finally:
        server.stop(1)
        archive.close()
    assert (e.value.result, e.value.source, e.value.reason) == (1, 1, 3)


@pytest.mark.dcmtk
def test_refused_by_storescp(tmp_path: Path) -> None:
    scp = _StoreSCP(tmp_path / "r", "--refuse")
    try:
        with pytest.raises(AssociationRejected, match="rejected the association"):
            operations.echo(scp.peer, SCU)
    finally:
        scp.stop()


@pytest.fixture
def slow_peer() -> Iterator[tuple[Peer, list[str]]]:
    """A pynetdicom SCP: its C-ECHO takes 3 s (or aborts when asked by AE title), its C-FIND
    answers every 20 ms and notes when it sees a C-CANCEL."""
    seen: list[str] = []

    def on_echo(event: Event) -> int:
        if event.assoc.requestor.ae_title == "ABORTME":
            event.assoc.abort()
            return 0
        time.sleep(3)
        return 0

    def on_find(event: Event) -> Iterator[tuple[int, Dataset | None]]:
        for n in range(100):
            if event.is_cancelled:
                seen.append("cancelled")
                yield 0xFE00, None
                return
            match = Dataset()
            match.QueryRetrieveLevel = "STUDY"
            match.StudyID = str(n)
            yield 0xFF00, match
            time.sleep(0.02)
        yield 0x0000, None

    ae = AE("SLOW")
    ae.add_supported_context(Verification)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    port = free_port()
    handlers = [(evt.EVT_C_ECHO, on_echo), (evt.EVT_C_FIND, on_find)]
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)
    yield Peer("SLOW", "127.0.0.1", port, dimse_timeout=0.3), seen
    server.shutdown()


def test_dimse_timeout(slow_peer: tuple[Peer, list[str]]) -> None:
    peer, _ = slow_peer
    started = time.monotonic()
    with pytest.raises(PeerTimeout, match="C-ECHO") as caught:
        operations.echo(peer, SCU)
    assert caught.value.phase == "DIMSE"
    assert time.monotonic() - started < 2


def test_an_abort_is_noticed_before_the_dimse_timeout(slow_peer: tuple[Peer, list[str]]) -> None:
    peer, _ = slow_peer
    started = time.monotonic()
    with pytest.raises(AssociationAborted):
        operations.echo(Peer(peer.ae_title, peer.host, peer.port, dimse_timeout=10), ABORTING)
    assert time.monotonic() - started < 3


# --- presentation contexts -----------------------------------------------------------------


def test_one_context_per_stored_syntax_and_a_fallback_per_class() -> None:
    pairs = [
        (MRImageStorage, ImplicitVRLittleEndian),
        (MRImageStorage, JPEGLSLossless),
        (CTImageStorage, ExplicitVRLittleEndian),
        (MRImageStorage, ImplicitVRLittleEndian),
    ]
    offered = [(cx.abstract_syntax, tuple(cx.transfer_syntax)) for cx in storage_contexts(pairs)]
    assert offered == [
        (MRImageStorage, (ImplicitVRLittleEndian,)),
        (MRImageStorage, (JPEGLSLossless,)),
        (CTImageStorage, (ExplicitVRLittleEndian,)),
        (MRImageStorage, LITTLE_ENDIAN),
        (CTImageStorage, LITTLE_ENDIAN),
    ]


def test_the_context_limit() -> None:
    pairs = [(f"1.2.3.{n}", ExplicitVRLittleEndian) for n in range(65)]  # 130 contexts
    with pytest.raises(TooManyContexts, match="130 presentation contexts needed"):
        storage_contexts(pairs)
    fitted = storage_contexts(pairs, fit=True)
    assert len(fitted) == MAX_CONTEXTS
    assert sum(len(cx.transfer_syntax) == 2 for cx in fitted) == 65  # every fallback kept
    groups = list(batches(pairs, lambda p: p))
    assert [len(g) for g in groups] == [64, 1]
    assert all(contexts_needed(g) <= MAX_CONTEXTS for g in groups)


# --- query and retrieve against our own server ---------------------------------------------


def _study_query() -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    return query


def test_find_streams_matches(archive: Archive, server: DimseServer) -> None:
    studies = {generate_uid() for _ in range(5)}
    for uid in studies:
        put(archive, instance(StudyInstanceUID=uid))
    found = {str(ds.StudyInstanceUID) for ds in operations.find(_ours(server), SCU, _study_query())}
    assert found == studies
    bogus = _study_query()
    bogus.QueryRetrieveLevel = "BOGUS"
    with pytest.raises(PeerFailed) as caught:
        list(operations.find(_ours(server), SCU, bogus))
    assert caught.value.status == 0xA900


def test_find_stopped_early_against_our_server(archive: Archive, server: DimseServer) -> None:
    """The C-CANCEL sent after two matches may reach the server after its last one (it
    answers fast; the paced peer below shows the cancel arriving): either way the stream
    ends cleanly and the association goes on."""
    for _ in range(20):
        put(archive, instance(StudyInstanceUID=generate_uid()))
    contexts = query_contexts([FIND_MODEL, str(Verification)])
    with associate(_ours(server), SCU, contexts) as link:
        stream = link.find(_study_query())
        first = [next(stream), next(stream)]
        assert stream.cancel() in (0xFE00, 0x0000)
        assert list(stream) == []
        assert link.echo() == 0
        assert len(list(link.find(_study_query()))) == 20
    assert all("StudyInstanceUID" in ds for ds in first)


def test_breaking_out_of_find_cancels(slow_peer: tuple[Peer, list[str]]) -> None:
    peer, seen = slow_peer
    got = []
    for match in operations.find(Peer(peer.ae_title, peer.host, peer.port), SCU, _study_query()):
        got.append(match.StudyID)
        if len(got) == 3:
            break
    deadline = time.monotonic() + 3
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert got == ["0", "1", "2"]
    assert seen == ["cancelled"]
    with associate(peer, SCU, query_contexts([FIND_MODEL])) as link:
        stream = link.find(_study_query())
        assert next(stream).StudyID == "0"
        assert stream.cancel() == 0xFE00


def test_get_hands_each_object_to_the_caller(archive: Archive, server: DimseServer) -> None:
    files = _ingest(archive, IMPLICIT, EXPLICIT, J2K)
    received: dict[str, Received] = {}

    def on_store(obj: Received) -> None:
        received[obj.sop_instance] = obj

    progress: list[int] = []
    result = operations.get(
        _ours(server),
        SCU,
        _images([f.sop_instance for f in files]),
        on_store,
        sorted({f.sop_class for f in files}),
        syntaxes=(*LITTLE_ENDIAN, JPEG2000),
        on_progress=lambda p: progress.append(p.completed),
    )
    assert (result.status, result.completed, result.failed) == (0, 3, 0)
    assert progress
    for f in files:  # each came back in its stored syntax, with its stored bytes
        assert received[f.sop_instance].transfer_syntax == f.transfer_syntax
        assert received[f.sop_instance].data == dataset_bytes(f.path)
    assert received[files[0].sop_instance].dataset().SOPInstanceUID == files[0].sop_instance


# --- C-STORE out, and C-MOVE from our server, into DCMTK's storescp ------------------------


@pytest.mark.dcmtk
def test_send_stored_files_raw(storescp: _StoreSCP) -> None:
    files = [_file(n) for n in (IMPLICIT, EXPLICIT, J2K, JLS)]
    report = operations.send(storescp.peer, SCU, files)
    assert report.ok, report
    received = storescp.received()
    for f in files:
        syntax, path = received[f.sop_instance]
        assert syntax == f.transfer_syntax, f.path.name
        assert dataset_bytes(path) == dataset_bytes(f.path), f.path.name


@pytest.mark.dcmtk
def test_send_converts_what_the_peer_does_not_take(tmp_path: Path) -> None:
    scp = _StoreSCP(tmp_path / "implicit-only", "+xi")
    files = [_file(n) for n in (EXPLICIT, J2K)]
    try:
        refused = operations.send(scp.peer, SCU, files)
        converted = operations.send(scp.peer, SCU, files[1:], convert=to_little_endian)
    finally:
        scp.stop()
    assert list(refused.errors) == [files[1].sop_instance]  # compressed, and no converter
    assert refused.statuses == {files[0].sop_instance: 0} and converted.ok
    received = scp.received()
    for f in files:
        syntax, path = received[f.sop_instance]
        assert syntax == ImplicitVRLittleEndian
        assert (dcmread(path).pixel_array == dcmread(f.path).pixel_array).all()


@pytest.mark.dcmtk
def test_move_keeps_every_stored_syntax(
    archive: Archive, server: DimseServer, storescp: _StoreSCP
) -> None:
    files = _ingest(archive, IMPLICIT, EXPLICIT, J2K, JLS)
    add_device(archive, Device("STORESCP", "127.0.0.1", storescp.port))
    progress: list[Progress] = []
    with associate(_ours(server), SCU, query_contexts([operations.MOVE])) as link:
        stream = link.move(_images([f.sop_instance for f in files]), "STORESCP")
        result = stream.wait(progress.append)
    assert (result.status, result.completed, result.failed, result.warning) == (0, 4, 0, 0)
    assert progress and progress[-1].remaining is not None
    received = storescp.received()
    for f in files:  # Implicit VR stays implicit, explicit stays explicit, compressed stays
        syntax, path = received[f.sop_instance]
        assert syntax == f.transfer_syntax, f.path.name
        assert dataset_bytes(path) == dataset_bytes(f.path), f.path.name


def test_move_reports_failed_instances(archive: Archive, server: DimseServer) -> None:
    good, bad = (put(archive, instance()).sop_instance for _ in range(2))
    refused = threading.Event()

    def on_store(event: Event) -> int:
        if event.request.AffectedSOPInstanceUID == bad:
            refused.set()
            return 0xA700
        return 0

    ae = AE("PICKY")
    ae.add_supported_context(CTImageStorage, LITTLE_ENDIAN)
    port = free_port()
    scp = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    add_device(archive, Device("PICKY", "127.0.0.1", port))
    try:
        result = operations.move(_ours(server), SCU, _images([good, bad]), "PICKY")
        unknown = operations.move(_ours(server), SCU, _images([good]), "NOWHERE")
    finally:
        scp.shutdown()
    assert (result.completed, result.failed, result.failed_instances) == (1, 1, (bad,))
    assert result.status == 0xB000 and not result.ok and refused.is_set()
    assert unknown.status == 0xA801


def _arrived(scp: _StoreSCP, sop_instance: str) -> bool:
    try:
        return sop_instance in scp.received()
    except Exception:  # a file storescp is still writing
        return False


def test_a_store_sent_ahead_and_not_asked_for_is_answered_before_the_next(
    storescp: _StoreSCP,
) -> None:
    """`store(a, following=b)` puts b on the wire once a is answered; when the caller then
    stores c instead, b's response is read first, so c gets its own status, and the
    association stays usable."""
    a, b, c = (_file(n) for n in (IMPLICIT, EXPLICIT, J2K))
    contexts = storage_contexts((f.sop_class, f.transfer_syntax) for f in (a, b, c))
    with associate(storescp.peer, SCU, contexts) as link:
        assert link.store(a, following=b) == 0
        deadline = time.monotonic() + 5
        while not _arrived(storescp, b.sop_instance) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _arrived(storescp, b.sop_instance)  # sent before it was asked for
        assert link.store(c) == 0
        assert link.store(b, following=a) == 0
        assert link.store(a) == 0
    assert set(storescp.received()) == {a.sop_instance, b.sop_instance, c.sop_instance}


def test_message_ids_wrap_within_their_16_bits() -> None:
    """A pooled forward link can outlive 65,535 requests: its Message IDs start again at 1
    (pynetdicom refuses anything above 65535)."""
    peer = Peer("PEER", "127.0.0.1", 104)
    assoc: Any = SimpleNamespace(is_established=True)
    link = PeerAssociation(assoc, peer, Timeouts.of(peer, SCU))
    ids = [link._ready("C-STORE") for _ in range(0x10001)]
    assert ids[0] == 1 and ids[0xFFFE] == 0xFFFF and ids[0xFFFF] == 1 and max(ids) == 0xFFFF
