"""A node behind a load balancer that speaks the PROXY protocol (`dimse_proxy_protocol`): the
client's address in the header is the caller's for partitions' allow-lists, on the direct
path and pynetdicom's alike; a header alone waits for the request; a connection from the
balancer without a header is closed."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet, Verification

from hounsfield.archive.context import Archive
from hounsfield.catalog import partitions
from hounsfield.db import engine as db
from hounsfield.dimse.server import DimseServer
from tests.conftest import make_archive, make_settings
from tests.dicomnet.test_proxyproto import v2_tcp4
from tests.rejection import A_ABORT, A_ASSOCIATE_AC, A_ASSOCIATE_RJ, association_request

ALLOWED, OTHER = "203.0.113.7", "198.51.100.9"


@pytest.fixture
def behind(tmp_path: Path, database_url: str) -> Iterator[tuple[Archive, int]]:
    """A node whose default partition admits callers from 203.0.113.0/24 only, behind a
    balancer at 127.0.0.1 (where every test connection comes from)."""
    settings = make_settings(tmp_path, database_url, dimse_proxy_protocol=["127.0.0.0/8"])
    archive = make_archive(settings)
    with db.write(archive.engine) as conn:
        partitions.change(conn, "HOUNSFIELD", accept_from=["*@203.0.113.0/24"])
    archive.forget_partitions()
    server = DimseServer(archive)
    server.start()
    yield archive, server.port
    server.stop(1)
    archive.close()


def _answer(port: int, *pieces: bytes, pause: float = 0.0) -> int | None:
    """Send `pieces` (with `pause` between them): the type of the PDU that answers, or None
    when the node closes the connection without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for n, piece in enumerate(pieces):
            if n:
                time.sleep(pause)
            sock.sendall(piece)
        first = sock.recv(1)
        if first and first[0] == A_ASSOCIATE_AC:
            sock.sendall(A_ABORT)
        return first[0] if first else None


def _request(*syntaxes: str) -> bytes:
    return association_request("HOUNSFIELD", "CALLER", syntaxes or (Verification,))


def test_the_header_names_the_caller(behind: tuple[Archive, int]) -> None:
    _archive, port = behind
    assert _answer(port, v2_tcp4(ALLOWED, 40000) + _request()) == A_ASSOCIATE_AC
    assert _answer(port, v2_tcp4(OTHER, 40000) + _request()) == A_ASSOCIATE_RJ
    v1 = f"PROXY TCP4 {ALLOWED} 127.0.0.1 40000 104\r\n".encode()
    assert _answer(port, v1 + _request()) == A_ASSOCIATE_AC
    # an association pynetdicom serves (C-GET), not the direct path
    get = _request(Verification, StudyRootQueryRetrieveInformationModelGet)
    assert _answer(port, v2_tcp4(ALLOWED, 40001) + get) == A_ASSOCIATE_AC
    assert _answer(port, v2_tcp4(OTHER, 40001) + get) == A_ASSOCIATE_RJ


def test_a_header_alone_waits_for_the_request(behind: tuple[Archive, int]) -> None:
    _archive, port = behind
    header = v2_tcp4(ALLOWED, 40002)
    assert _answer(port, header, _request(), pause=0.3) == A_ASSOCIATE_AC
    assert _answer(port, header[:7], header[7:] + _request(), pause=0.3) == A_ASSOCIATE_AC


def test_the_balancer_must_send_a_header(behind: tuple[Archive, int]) -> None:
    _archive, port = behind
    assert _answer(port, _request()) is None  # closed: no caller to check
    assert _answer(port, b"GET / HTTP/1.1\r\n\r\n") is None
