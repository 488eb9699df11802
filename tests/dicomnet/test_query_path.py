"""Query-only associations, served by the direct path, answer as pynetdicom's path does."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)

from hounsfield.archive.context import Archive
from hounsfield.dicomnet.direct import wire
from hounsfield.dicomnet.handoff import DispatchingServer
from hounsfield.dimse.server import DimseServer
from tests.conftest import make_archive, make_settings
from tests.dcmtk import run
from tests.rejection import rejection
from tests.synth import instance, put

STUDY_FIND = StudyRootQueryRetrieveInformationModelFind


def _studies(archive: Archive) -> list[str]:
    studies = [generate_uid() for _ in range(3)]
    for i, study in enumerate(studies):
        for _ in range(2):
            put(archive, instance(StudyInstanceUID=study, PatientID="QP-1", PatientName=f"Q^{i}"))
    return studies


def _findscu(port: int, out: Path, *keys: str) -> list[Dataset]:
    """The answers findscu received (files it writes, with a file meta of its own)."""
    out.mkdir()
    args = ["-S", "-aec", "HOUNSFIELD", "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    run("findscu", *args, "127.0.0.1", str(port), check=True)
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def test_findscu_answers_are_alike_on_both_paths(
    archive: Archive, pair: tuple[DimseServer, DimseServer], served: list[Any], tmp_path: Path
) -> None:
    own, plain = pair
    _studies(archive)
    for level, count, keys in [
        ("STUDY", 3, ["PatientID=QP-1", "StudyInstanceUID", "PatientName", "ModalitiesInStudy"]),
        ("SERIES", 6, ["PatientID=QP-1", "StudyInstanceUID", "SeriesInstanceUID", "Modality"]),
    ]:
        query = [f"QueryRetrieveLevel={level}", *keys]
        mine = _findscu(own.port, tmp_path / f"own-{level}", *query)
        theirs = _findscu(plain.port, tmp_path / f"plain-{level}", *query)
        assert len(mine) == count
        # the order of matches is the index's
        assert sorted(d.to_json() for d in mine) == sorted(d.to_json() for d in theirs)
    assert len(served) == 2  # one association per findscu run on the query path


def _find(assoc: Association, query: Dataset, model: Any = STUDY_FIND) -> list[Any]:
    return [(s.Status, i) for s, i in assoc.send_c_find(query, model) if "Status" in s]


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_pynetdicom_find_alike_on_both_paths_small_pdus(
    archive: Archive, pair: tuple[DimseServer, DimseServer], served: list[Any], syntax: str
) -> None:
    """Answers in another transfer syntax (big endian: built as Datasets) and split into PDUs
    no larger than the requestor takes."""
    _studies(archive)
    found = []
    for server in pair:
        ae = AE(ae_title="SMALL")
        ae.maximum_pdu_size = 256
        ae.add_requested_context(STUDY_FIND, [syntax])
        ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind, [syntax])
        assoc = ae.associate("127.0.0.1", server.port, ae_title="HOUNSFIELD")
        assert assoc.is_established
        query = Dataset()
        query.QueryRetrieveLevel = "PATIENT"
        query.PatientID = "QP-1"
        query.PatientName = ""
        query.NumberOfPatientRelatedInstances = ""
        patients = _find(assoc, query, PatientRootQueryRetrieveInformationModelFind)
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.PatientID = "QP-1"
        query.StudyInstanceUID = ""
        query.SOPInstanceUID = ""
        query.InstitutionName = "*"  # answered from the stored header
        images = _find(assoc, query)
        assoc.release()
        found.append((patients, sorted(images, key=lambda r: str(r[1] and r[1].SOPInstanceUID))))
    assert found[0] == found[1]
    patients, images = found[0]
    assert [s for s, _ in patients] == [0xFF00, 0x0000]
    assert patients[0][1].NumberOfPatientRelatedInstances == 6
    assert len(images) == 7 and images[-1][0] == 0x0000
    assert len(served) == 1


def test_echo_and_refusals_on_the_query_path(
    tmp_path: Path, database_url: str, served: list[Any]
) -> None:
    archive = make_archive(make_settings(tmp_path, database_url, max_associations=1))
    server = DimseServer(archive)
    server.start()
    try:
        echo = ["-aec", "HOUNSFIELD", "127.0.0.1", str(server.port)]
        assert run("echoscu", *echo).returncode == 0
        # its association counts against the limit until its thread has ended
        assert _wait(lambda: not server.server.active_associations)
        ae = AE(ae_title="ASKER")
        ae.add_requested_context(Verification)
        assert rejection(server.port, "NOBODY") == (1, 1, 7)
        assert _wait(lambda: not server.server.active_associations)  # as the echo's, above
        first = ae.associate("127.0.0.1", server.port, ae_title="HOUNSFIELD")
        assert first.is_established
        # the association limit: transient, local limit exceeded
        assert rejection(server.port, "HOUNSFIELD") == (2, 3, 2)
        assert first.send_c_echo().Status == 0x0000
        first.release()
        assert first.is_released
        assert len(served) == 4
    finally:
        server.stop(1)
        archive.close()


def test_other_services_go_to_pynetdicom(
    archive: Archive, server: DimseServer, served: list[Any]
) -> None:
    _studies(archive)
    ae = AE(ae_title="RETRIEVER")
    ae.add_requested_context(STUDY_FIND)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    assoc = ae.associate("127.0.0.1", server.port, ae_title="HOUNSFIELD")
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = "QP-1"
    assert len(_find(assoc, query)) == 4
    assoc.release()
    assert served == []


def _wait(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(condition())


def test_protocol_errors_and_slow_pdus_abort(
    tmp_path: Path, database_url: str, served: list[Any]
) -> None:
    archive = make_archive(
        make_settings(tmp_path, database_url, dimse_timeout=1.0, idle_timeout=30.0)
    )
    server = DimseServer(archive)
    server.start()
    try:
        ae = AE(ae_title="BROKEN")
        ae.add_requested_context(STUDY_FIND)
        # a PDV on a presentation context that was never accepted
        wrong = ae.associate("127.0.0.1", server.port, ae_title="HOUNSFIELD")
        pdv = struct.pack(">IBB", 4, 99, 0x03) + b"\0\0"
        wrong.dul.socket.socket.sendall(struct.pack(">BBI", 4, 0, len(pdv)) + pdv)
        assert _wait(lambda: wrong.is_aborted)
        # a PDU begun and never finished: aborted after the DIMSE timeout, not the idle one
        slow = ae.associate("127.0.0.1", server.port, ae_title="HOUNSFIELD")
        started = time.monotonic()
        slow.dul.socket.socket.sendall(struct.pack(">BBI", 4, 0, 100) + b"\0")
        assert _wait(lambda: slow.is_aborted)
        assert time.monotonic() - started < 10
        assert _wait(lambda: not server.server.active_associations)
        # the server aborts what is still open when it stops
        kept = ae.associate("127.0.0.1", server.port, ae_title="HOUNSFIELD")
        assert kept.is_established and len(served) == 3
    finally:
        server.stop(0.2)
        archive.close()
    assert _wait(lambda: kept.is_aborted)


def test_proposed_reads_only_whole_requests() -> None:
    ae = AE(ae_title="PEEK")
    ae.add_requested_context(STUDY_FIND)
    ae.add_requested_context(Verification)
    listener = socket.create_server(("127.0.0.1", 0))
    ae.acse_timeout = 1
    threading.Thread(
        target=ae.associate,
        args=("127.0.0.1", listener.getsockname()[1]),
        kwargs={"ae_title": "ANY"},
        daemon=True,
    ).start()
    conn, _ = listener.accept()
    head = b""
    while len(head) < 6 or len(head) < 6 + struct.unpack_from(">I", head, 2)[0]:
        head += conn.recv(65536)
    conn.close()
    listener.close()
    assert wire.proposed(head) == (frozenset({str(STUDY_FIND), str(Verification)}), False)
    assert wire.proposed(head[:-1]) is None  # not all of it yet
    assert wire.proposed(b"\x16\x03\x01") is None  # a TLS ClientHello


def test_dcmread_of_findscu_answer_on_query_path(
    archive: Archive, server: DimseServer, served: list[Any], tmp_path: Path
) -> None:
    """A non-ASCII answer (ISO_IR 192) read back as it was stored."""
    put(
        archive,
        instance(
            PatientID="QP-UTF", PatientName="Müller^Jürgen", SpecificCharacterSet="ISO_IR 192"
        ),
    )
    (answer,) = _findscu(
        server.port,
        tmp_path / "utf",
        "QueryRetrieveLevel=STUDY",
        "PatientID=QP-UTF",
        "PatientName",
    )
    assert str(answer.PatientName) == "Müller^Jürgen"
    assert len(served) == 1


def test_a_requestor_that_aborts_in_the_middle_of_a_find(
    archive: Archive, server: DimseServer, served: list[Any]
) -> None:
    for _ in range(200):
        put(archive, instance())
    ae = AE(ae_title="QUITTER")
    ae.add_requested_context(STUDY_FIND)
    assoc = ae.associate("127.0.0.1", server.port, ae_title="HOUNSFIELD")
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    responses = assoc.send_c_find(query, STUDY_FIND)
    status, _ = next(responses)
    assert status.Status == 0xFF00
    assoc.abort()
    assert _wait(lambda: not server.server.active_associations)
    assert run("echoscu", "-aec", "HOUNSFIELD", "127.0.0.1", str(server.port)).returncode == 0
    assert len(served) == 2


def test_handlers_see_what_pynetdicom_gives_them(served: list[Any]) -> None:
    """The same handler, bound to a server with the query path on and one with it off, reads
    the same event attributes (a C-FIND with two pending answers, and a C-ECHO)."""
    seen: dict[bool, list[Any]] = {True: [], False: []}

    def on_find(event: Any, path: bool) -> Iterator[tuple[int, Dataset | None]]:
        ctx = event.context
        seen[path].append(
            (
                type(ctx).__name__,
                ctx.context_id,
                str(ctx.abstract_syntax),
                str(ctx.transfer_syntax),
                str(event.request.AffectedSOPClassUID),
                event.request.MessageID,
                event.identifier.PatientID,
                event.assoc.requestor.ae_title,
                event.assoc.requestor.address,
                event.is_cancelled,
            )
        )
        for name in ("A^B", "C^D"):
            answer = Dataset()
            answer.PatientName = name
            yield 0xFF00, answer
        yield 0x0000, None

    def on_echo(event: Any, path: bool) -> int:
        seen[path].append(("echo", event.assoc.requestor.ae_title))
        return 0x0000

    answers = {}
    for path in (True, False):
        ae = AE(ae_title="PARITY")
        ae.add_supported_context(STUDY_FIND)
        ae.add_supported_context(Verification)
        handlers = [(evt.EVT_C_FIND, on_find, [path]), (evt.EVT_C_ECHO, on_echo, [path])]
        server = ae.make_server(
            ("127.0.0.1", 0), evt_handlers=handlers, server_class=DispatchingServer
        )
        server.query_path = path
        ae._servers.append(server)  # as DimseServer does: shutdown() looks for it
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            scu = AE(ae_title="ASKER")
            scu.add_requested_context(STUDY_FIND, [ImplicitVRLittleEndian])
            scu.add_requested_context(Verification)
            assoc = scu.associate("127.0.0.1", server.server_address[1], ae_title="PARITY")
            query = Dataset()
            query.QueryRetrieveLevel = "PATIENT"
            query.PatientID = "P-7"
            answers[path] = [(s, i and str(i.PatientName)) for s, i in _find(assoc, query)]
            assert assoc.send_c_echo().Status == 0x0000
            assoc.release()
        finally:
            server.shutdown()
    assert seen[True] == seen[False]
    assert seen[True][0][0] == "PresentationContextTuple"
    assert answers[True] == answers[False] == [(0xFF00, "A^B"), (0xFF00, "C^D"), (0, None)]
    assert len(served) == 1
