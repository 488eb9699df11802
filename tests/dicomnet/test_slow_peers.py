"""Peers that never speak, dribble bytes, vanish or crowd the server: it closes them on its
timeouts and keeps serving everyone else, with descriptor numbers beyond FD_SETSIZE too."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import CTImageStorage, Verification

from bench.reliability.flood_part import closed_within
from hounsfield.archive.context import Archive
from hounsfield.dicomnet.lobby import ADMIT_BYTES, Lobby, arrived
from hounsfield.dicomnet.tls import handshake
from hounsfield.dimse.server import DimseServer
from tests.conftest import make_archive, make_settings
from tests.rejection import rejection
from tests.security.certs import make_certs
from tests.synth import instance

NEVER_HANGS = 30.0  # seconds: far beyond every timeout below
PROPOSED = (Verification, CTImageStorage)


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[DimseServer]:
    """A DIMSE server with short timeouts and room for two associations."""
    settings = make_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'index.db'}",
        association_timeout=4.0,
        dimse_timeout=4.0,
        idle_timeout=60.0,  # beyond NEVER_HANGS: only the PDU deadline can cut a dribble
        max_associations=2,
    )
    archive: Archive = make_archive(settings)
    srv = DimseServer(archive)
    srv.start()
    yield srv
    srv.stop(grace_seconds=2)
    archive.close()


def _associate(port: int) -> Association:
    ae = AE("SLOWTEST")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = NEVER_HANGS
    for syntax in PROPOSED:
        ae.add_requested_context(syntax)
    return ae.associate("127.0.0.1", port, ae_title="HOUNSFIELD")


def _ct() -> Dataset:
    ds = instance()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _echo_and_store(port: int) -> None:
    assoc = _associate(port)
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0
        assert assoc.send_c_store(_ct()).Status == 0
    finally:
        assoc.release()


def test_silent_connections_take_no_association_slot_and_are_closed(
    small_server: DimseServer,
) -> None:
    silent = [socket.create_connection(("127.0.0.1", small_server.port)) for _ in range(20)]
    try:
        _echo_and_store(small_server.port)  # 20 silent connections, a limit of 2
        assert all(closed_within(s, NEVER_HANGS) for s in silent)
    finally:
        for s in silent:
            s.close()
    _echo_and_store(small_server.port)


def test_associate_requests_sent_a_byte_at_a_time_take_no_slot_and_are_cut_off(
    small_server: DimseServer,
) -> None:
    body = bytes(200)  # an A-ASSOCIATE-RQ of 200 bytes, sent at 4 bytes a second
    pdu = b"\x01\x00" + struct.pack(">I", len(body)) + body
    dribblers = [socket.create_connection(("127.0.0.1", small_server.port)) for _ in range(3)]
    try:
        for sock in dribblers:
            sock.sendall(pdu[:8])  # the PDU header and two bytes: more than the limit of 2
        _echo_and_store(small_server.port)
        sent = 8
        with contextlib.suppress(OSError):  # the server closed
            while sent < len(pdu) - 1 and not closed_within(dribblers[0], 0.25):
                dribblers[0].sendall(pdu[sent : sent + 1])
                sent += 1
        assert sent < len(pdu) - 1, "the server waited for the whole dribbled A-ASSOCIATE-RQ"
    finally:
        for sock in dribblers:
            sock.close()
    _echo_and_store(small_server.port)


@pytest.mark.parametrize(
    ("head", "enough"),
    [
        (b"", True),  # closed
        (b"\x16\x03\x01", False),  # the start of a TLS record
        (b"\x16\x03\x01\x00\x04" + bytes(4), True),  # a whole (tiny) ClientHello record
        (b"\x80\x00", True),  # neither: pynetdicom answers it
        (b"\x01\x00\x00\x00", False),  # half a header
        (b"\x01\x00" + struct.pack(">I", 10) + bytes(9), False),
        (b"\x01\x00" + struct.pack(">I", 10) + bytes(10), True),
        (b"\x01\x00" + struct.pack(">I", 10**6) + bytes(ADMIT_BYTES - 6), True),
    ],
)
def test_a_request_has_arrived_when_whole_or_large_or_unknown(head: bytes, enough: bool) -> None:
    assert arrived(head) is enough


def test_a_request_already_there_is_admitted_on_the_accepting_thread() -> None:
    """A connection whose request came with it is admitted at once by `add`, on the caller's
    thread; one that has sent part of it waits in the lobby for the rest."""
    admitted: list[tuple[str, bytes]] = []
    done = threading.Event()

    def admit(sock: socket.socket, _address: object) -> None:
        admitted.append((threading.current_thread().name, sock.recv(64)))
        sock.close()
        done.set()

    lobby = Lobby(admit, lambda: 5.0)
    request = struct.pack(">BBI", 0x01, 0, 4) + b"\0\1\0\0"
    try:
        ours, theirs = socket.socketpair()
        with theirs:
            theirs.sendall(request)
            lobby.add(ours, ("127.0.0.1", 1))
            assert admitted == [(threading.current_thread().name, request)]
        ours, theirs = socket.socketpair()
        with theirs:
            done.clear()
            theirs.sendall(request[:5])
            lobby.add(ours, ("127.0.0.1", 2))
            assert len(admitted) == 1 and len(lobby) == 1
            theirs.sendall(request[5:])
            assert done.wait(NEVER_HANGS)
            assert admitted[1] == ("dimse-lobby", request)
    finally:
        lobby.close()


def test_pdu_sent_a_byte_at_a_time_after_association_is_cut_off(
    small_server: DimseServer,
) -> None:
    assoc = _associate(small_server.port)
    assert assoc.is_established
    sock = assoc.dul.socket.socket
    assert sock is not None
    header = b"\x04\x00" + struct.pack(">I", 1000)  # a P-DATA-TF of 1000 bytes
    deadline = time.monotonic() + NEVER_HANGS
    sent = 0
    with contextlib.suppress(OSError):  # the server aborted and closed
        while assoc.is_established and time.monotonic() < deadline and sent < 1006:
            sock.sendall((header + bytes(1000))[sent : sent + 1])
            sent += 1
            time.sleep(0.05)
    assert not assoc.is_established and sent < 1006
    assoc.abort()
    _echo_and_store(small_server.port)


def test_a_pdu_announcing_gigabytes_is_refused_at_its_header(small_server: DimseServer) -> None:
    assoc = _associate(small_server.port)
    assert assoc.is_established
    sock = assoc.dul.socket.socket
    assert sock is not None
    sent = 0
    with contextlib.suppress(OSError):  # the server closed
        sock.sendall(b"\x04\x00" + struct.pack(">I", 0xFFFFFFF0))
        chunk = bytes(1 << 20)
        while sent < 64 * len(chunk) and assoc.is_established:
            sock.sendall(chunk)
            sent += len(chunk)
    assert sent < 64 * len(chunk), "the server took 64 MB for a PDU it cannot accept"
    assoc.abort()
    _echo_and_store(small_server.port)


def test_a_client_vanishing_mid_association_frees_its_slot(small_server: DimseServer) -> None:
    listener = small_server.server
    assert listener is not None
    for _ in range(3):  # more times than the limit of 2: every slot came back
        assoc = _associate(small_server.port)
        assert assoc.is_established
        sock = assoc.dul.socket.socket
        assert sock is not None
        sock.sendall(b"\x04\x00" + struct.pack(">I", 5000) + bytes(100))  # half a PDU
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # reset, as a crashed client's kernel does
        assoc.kill()
        deadline = time.monotonic() + NEVER_HANGS
        while listener.active_associations and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not listener.active_associations, "a vanished client kept its association"
    _echo_and_store(small_server.port)


def test_associations_beyond_the_limit_are_rejected(small_server: DimseServer) -> None:
    held = [_associate(small_server.port) for _ in range(2)]
    try:
        assert all(a.is_established for a in held)
        started = time.monotonic()
        excess = rejection(small_server.port, "HOUNSFIELD", "SLOWTEST", PROPOSED)
        assert excess is not None and time.monotonic() - started < NEVER_HANGS
    finally:
        for a in held:
            a.release()
    _echo_and_store(small_server.port)


def test_descriptor_numbers_beyond_fd_setsize_are_served(small_server: DimseServer) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1500
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.fail(f"RLIMIT_NOFILE hard limit {hard} is below {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    fillers: list[int] = []
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        fillers.append(null)
        while fillers[-1] < 1100:  # the server's next sockets get numbers above 1024
            fillers.append(os.dup(null))
        _echo_and_store(small_server.port)
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_tls_handshake_sent_a_byte_at_a_time_is_cut_off(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server.cert, certs.server.key)
    server_side, client_side = socket.socketpair()
    result: list[object] = []
    thread = threading.Thread(
        target=lambda: result.append(handshake(context, server_side, 2.0, ("peer", 1)))
    )
    thread.start()
    record = b"\x16\x03\x01\x00\xc8" + bytes(200)  # a ClientHello record of 200 bytes
    sent = 0
    with contextlib.suppress(OSError):  # the server closed
        while thread.is_alive() and sent < len(record):
            client_side.sendall(record[sent : sent + 1])
            sent += 1
            time.sleep(0.25)
    thread.join(timeout=NEVER_HANGS)
    client_side.close()
    assert sent < len(record), "the handshake waited for the whole dribbled ClientHello"
    assert result and isinstance(result[0], str) and "handshake failed" in result[0]
