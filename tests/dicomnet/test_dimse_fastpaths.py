"""The event-driven reactors and the byte-level DIMSE sender behave like pynetdicom's own."""

from __future__ import annotations

import socket
import threading
import time
from io import BytesIO
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.dimse import _RQ_TO_MESSAGE, _RSP_TO_MESSAGE
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_GET, C_MOVE, C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.sop_class import CTImageStorage, Verification

from hounsfield.dicomnet import checkpoint, evented, fastrecv, fastsend, handoff
from tests.dcmtk import free_port

CT = "1.2.840.10008.5.1.4.1.1.2"


def _pynetdicom_command(primitive: Any) -> bytes:
    table = _RQ_TO_MESSAGE if primitive.MessageIDBeingRespondedTo is None else _RSP_TO_MESSAGE
    message = table[primitive.__class__]()
    message.primitive_to_message(primitive)
    return bytes(encode(message.command_set, True, True))


def _store_rq(originator: bool) -> C_STORE:
    p = C_STORE()
    p.MessageID = 7
    p.AffectedSOPClassUID = CT
    p.AffectedSOPInstanceUID = "1.2.3.4.56"  # even length
    p.Priority = 2
    if originator:
        p.AffectedSOPInstanceUID = "1.2.3.4.5"  # odd length: padded with NUL
        p.MoveOriginatorApplicationEntityTitle = "MOVER"  # odd: padded with a space
        p.MoveOriginatorMessageID = 3
    p.DataSet = BytesIO(b"xx")
    return p


def _responses() -> list[Any]:
    get = C_GET()
    get.MessageIDBeingRespondedTo = 1
    get.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.3"
    get.Status = 0xFF00
    get.NumberOfRemainingSuboperations = 5
    get.NumberOfCompletedSuboperations = 3
    get.NumberOfFailedSuboperations = 1
    get.NumberOfWarningSuboperations = 0
    move = C_MOVE()
    move.MessageIDBeingRespondedTo = 2
    move.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.2"
    move.Status = 0x0000
    move.NumberOfCompletedSuboperations = 100
    move.NumberOfFailedSuboperations = 0
    move.NumberOfWarningSuboperations = 0
    find = C_FIND()
    find.MessageIDBeingRespondedTo = 3
    find.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.1"
    find.Status = 0xFF00
    find.Identifier = BytesIO(b"ab")
    echo = C_ECHO()
    echo.MessageIDBeingRespondedTo = 4
    echo.AffectedSOPClassUID = Verification
    echo.Status = 0
    store = C_STORE()
    store.MessageIDBeingRespondedTo = 9
    store.AffectedSOPClassUID = CT
    store.AffectedSOPInstanceUID = "1.2.3"
    store.Status = 0xB007
    return [get, move, find, echo, store]


@pytest.mark.parametrize("primitive", [_store_rq(False), _store_rq(True), *_responses()])
def test_command_sets_are_byte_identical_to_pynetdicoms(primitive: Any) -> None:
    name = fastsend._message_name(primitive)
    has_dataset = any(getattr(primitive, k, None) is not None for k in ("DataSet", "Identifier"))
    assert fastsend.encode_command(name, primitive, has_dataset) == _pynetdicom_command(primitive)


def test_commands_it_does_not_cover_are_left_to_pynetdicom() -> None:
    rsp = _responses()[-1]
    rsp.ErrorComment = "disk full"  # LO: not written here
    assert fastsend.encode_command("C-STORE-RSP", rsp, False) is None


def test_pdus_split_at_the_peer_maximum_and_mark_the_last_fragment() -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    encoded = fastsend.pdus(data, 5, command=False, last=True, size=4096)
    pieces, at = [], 0
    while at < len(encoded):
        pdu_type, _, length, pdv_length, context, control = fastsend._PDU_HEAD.unpack_from(
            encoded, at
        )
        assert (pdu_type, context, pdv_length) == (4, 5, length - 4)
        assert length <= 4096
        pieces.append((control, encoded[at + 12 : at + 6 + length]))
        at += 6 + length
    assert [c for c, _ in pieces] == [0, 0, 2]
    assert b"".join(p for _, p in pieces) == data


def _echo_server(port: int, seen: list[Any]) -> Any:
    ae = AE("FASTSCP")
    ae.add_supported_context(Verification)
    ae.add_supported_context(CTImageStorage)

    def on_store(event: Any) -> int:
        seen.append((event.request.AffectedSOPInstanceUID, event.dataset.PatientID))
        return 0

    handlers = [(evt.EVT_C_STORE, on_store)]
    return ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)


def test_associations_run_on_the_event_driven_reactors_end_to_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real association in both directions: echo, a stored dataset, a prompt release."""
    seen: list[Any] = []
    delivered: list[str] = []
    deliver = fastrecv._deliver

    def counting(provider: Any, receiving: Any) -> None:
        delivered.append(type(receiving.primitive).__name__)
        deliver(provider, receiving)

    monkeypatch.setattr(fastrecv, "_deliver", counting)
    port = free_port()
    server = _echo_server(port, seen)
    try:
        ae = AE("FASTSCU")
        ae.add_requested_context(Verification)
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", port, ae_title="FASTSCP")
        assert assoc.is_established
        assert isinstance(assoc.dul, evented.EventedDUL)
        assert isinstance(assoc._reactor_checkpoint, checkpoint.Checkpoint)
        for _ in range(20):
            assert assoc.send_c_echo().Status == 0
        ds = Dataset()
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = "1.2.3.4.5.6"
        ds.PatientID = "FAST"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        assert assoc.send_c_store(ds).Status == 0
        assoc.release()
        assert assoc.is_released
        assert seen == [("1.2.3.4.5.6", "FAST")]
        assert delivered == ["C_STORE", "C_STORE"]  # the request and its response, from bytes
        for a in server.active_associations:
            a.join(timeout=5)
        assert not server.active_associations
    finally:
        server.shutdown()


def test_an_idle_association_waits_instead_of_polling() -> None:
    """pynetdicom's DUL woke every millisecond or so; the evented one only on its timer tick."""
    port = free_port()
    server = _echo_server(port, [])
    try:
        ae = AE("FASTSCU")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", port, ae_title="FASTSCP")
        wakes = [0]
        wait = assoc.dul._wait

        def counting(idle_wakes: int) -> int:
            wakes[0] += 1
            return int(wait(idle_wakes))

        assoc.dul._wait = counting  # type: ignore[method-assign]
        time.sleep(0.5)
        assert wakes[0] <= 0.5 / evented.TICK * 2 + 5
        assert assoc.send_c_echo().Status == 0  # and a wake-up still gets through at once
        assoc.release()
    finally:
        server.shutdown()


def _pynetdicom_decoded(command: bytes, data: bytes | None) -> Any:
    message = DIMSEMessage()
    p_data = P_DATA()
    p_data.presentation_data_value_list.append((1, b"\x03" + command))
    if data is not None:
        p_data.presentation_data_value_list.append((1, b"\x02" + data))
    assert message.decode_msg(p_data)
    return message.message_to_primitive()


_RECEIVED = (
    "MessageID",
    "MessageIDBeingRespondedTo",
    "AffectedSOPClassUID",
    "AffectedSOPInstanceUID",
    "Priority",
    "Status",
    "MoveOriginatorApplicationEntityTitle",
    "MoveOriginatorMessageID",
)


@pytest.mark.parametrize("primitive", [_store_rq(False), _store_rq(True), _responses()[-1]])
def test_store_messages_decode_like_pynetdicoms(primitive: Any) -> None:
    name = fastsend._message_name(primitive)
    has_dataset = name.endswith("RQ")
    command = fastsend.encode_command(name, primitive, has_dataset)
    assert command is not None
    decoded = fastrecv.decode_command(command)
    assert decoded is not None
    ours, dataset_follows = decoded
    theirs = _pynetdicom_decoded(command, b"xx" if has_dataset else None)
    assert dataset_follows == has_dataset
    for name in _RECEIVED:
        assert getattr(ours, name) == getattr(theirs, name), name


def test_store_messages_it_does_not_cover_are_left_to_pynetdicom() -> None:
    rsp = _responses()[-1]
    rsp.ErrorComment = "disk full"
    command = _pynetdicom_command(rsp)  # with an ErrorComment element
    assert fastrecv.decode_command(command) is None
    echo = _pynetdicom_command(_responses()[3])
    assert fastrecv.decode_command(echo) is None  # not a C-STORE
    assert fastrecv.decode_command(command[:-3]) is None  # truncated


def test_a_pdu_is_read_whole_or_cut_short_when_the_peer_closes() -> None:
    class Holder:
        def __init__(self, sock: Any) -> None:
            self.socket = sock

    ours, theirs = socket.socketpair()
    try:
        payload = bytes(range(256)) * 1024  # 256 KiB: several recv calls
        sender = threading.Thread(target=theirs.sendall, args=(payload + b"tail",))
        sender.start()
        assert fastrecv.recv(Holder(ours), len(payload)) == payload  # type: ignore[arg-type]
        sender.join()
        theirs.close()
        assert fastrecv.recv(Holder(ours), 100) == b"tail"  # type: ignore[arg-type]
    finally:
        ours.close()


def test_associations_share_the_servers_contexts_and_leave_them_as_they_were() -> None:
    """pynetdicom deep-copies a server's contexts for each association it accepts; here they
    are shared, and negotiating associations that propose different syntaxes and roles
    changes none of them."""
    ae = AE("SHARING")
    ae.add_supported_context(CTImageStorage, [ImplicitVRLittleEndian, "1.2.840.10008.1.2.1"])
    ae.add_supported_context(Verification)
    port = free_port()
    server = ae.make_server(("127.0.0.1", port), server_class=handoff.DispatchingServer)
    server.store_path = False  # pynetdicom's associations are the ones that copied them
    ae._servers.append(server)  # as the node registers its listeners
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def described() -> list[tuple[str, list[str], Any, Any]]:
        return [
            (str(c.abstract_syntax), [str(t) for t in c.transfer_syntax], c.scu_role, c.scp_role)
            for c in server.contexts
        ]

    before = described()
    accepted: list[Any] = []
    try:
        assert isinstance(server.contexts, handoff.SharedContexts)
        for syntax in ("1.2.840.10008.1.2.1", ImplicitVRLittleEndian):
            requestor = AE("ASKING")
            requestor.add_requested_context(CTImageStorage, [syntax])
            assoc = requestor.associate("127.0.0.1", port, ae_title="SHARING")
            assert assoc.is_established
            accepted.append(str(assoc.accepted_contexts[0].transfer_syntax[0]))
            acceptor = server.active_associations[0]
            assert all(
                a is b
                for a, b in zip(acceptor.acceptor.supported_contexts, server.contexts, strict=True)
            )
            assoc.release()
            time.sleep(0.05)
    finally:
        server.shutdown()
        server.server_close()
    assert accepted == ["1.2.840.10008.1.2.1", ImplicitVRLittleEndian]
    assert described() == before


def test_a_handed_over_connection_becomes_an_association_on_the_taking_thread() -> None:
    """A DIMSE process creates the association of a connection handed to it where it takes
    it (no thread only for that); the association then serves on its own threads."""
    ae = AE("HANDED")
    ae.add_supported_context(Verification)
    opened_on: list[threading.Thread] = []
    server = ae.make_server(
        ("127.0.0.1", 0),
        evt_handlers=[(evt.EVT_CONN_OPEN, lambda _e: opened_on.append(threading.current_thread()))],
        server_class=handoff.HandedServer,
    )
    # pynetdicom's associations are the ones looked at (the direct path would take this one
    # when its A-ASSOCIATE-RQ happened to have arrived before `take` looked)
    server.query_path = False
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    outcome: list[int] = []

    def echo() -> None:
        asking = AE("ASKING")
        asking.add_requested_context(Verification)
        assoc = asking.associate("127.0.0.1", port, ae_title="HANDED")
        outcome.extend([int(assoc.send_c_echo().Status)] if assoc.is_established else [])
        assoc.release()

    requestor = threading.Thread(target=echo, daemon=True)
    try:
        requestor.start()
        conn, address = listening.accept()
        server.take(conn, address)
        assert opened_on == [threading.current_thread()]
        assert len(server.active_associations) == 1
        requestor.join(timeout=10)
    finally:
        server.close()
        listening.close()
    assert outcome == [0]
