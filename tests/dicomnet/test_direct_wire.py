"""The bytes of the direct path: PDUs read whole and on time, messages assembled."""

from __future__ import annotations

import contextlib
import socket
import struct
import time

import pytest
from pynetdicom.dimse_messages import C_FIND_RQ
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode

from hounsfield.dicomnet import fastsend
from hounsfield.dicomnet.direct import wire
from hounsfield.dicomnet.direct.wire import Assembler, PduReader, ProtocolError

STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


def _find_command(msg_id: int) -> bytes:
    primitive = C_FIND()
    primitive.MessageID = msg_id
    primitive.AffectedSOPClassUID = STUDY_FIND
    primitive.Priority = 2
    message = C_FIND_RQ()
    message.primitive_to_message(primitive)
    message.command_set.CommandDataSetType = 0x0001
    return bytes(encode(message.command_set, True, True))


def _bodies(pdus: bytes) -> list[bytes]:
    """The bodies of P-DATA-TF PDUs laid end to end."""
    out, at = [], 0
    while at < len(pdus):
        length = struct.unpack_from(">I", pdus, at + 2)[0]
        out.append(pdus[at + 6 : at + 6 + length])
        at += 6 + length
    return out


def test_a_message_in_fragments_over_several_pdus_is_assembled() -> None:
    command, identifier = _find_command(7), b"\x08\x00\x52\x00\x06\x00STUDY "
    wire = fastsend.pdus(command, 3, True, True, 20) + fastsend.pdus(identifier, 3, False, True, 9)
    bodies = _bodies(wire)
    assert len(bodies) > 4  # small PDUs: the message comes in many fragments
    assembler = Assembler(frozenset({3}))
    done = [m for body in bodies for m in assembler.feed(body)]
    ((context, parsed, data),) = done
    assert context == 3 and data == identifier
    assert (parsed.field, parsed.message_id, parsed.text(0x0000_0002)) == (0x20, 7, STUDY_FIND)
    assert parsed.has_dataset and parsed.number(0x0000_0700) == 2


def test_two_messages_in_one_pdu() -> None:
    one = fastsend.pdus(_find_command(1), 1, True, True, 0)
    data = fastsend.pdus(b"\x08\x00\x52\x00\x00\x00", 1, False, True, 0)
    pdvs = b"".join(_bodies(one + data + one + data))
    messages = Assembler(frozenset({1})).feed(pdvs)
    assert [m[1].message_id for m in messages] == [1, 1]


@pytest.mark.parametrize(
    "pdv, why",
    [
        (struct.pack(">IBB", 4, 5, 3) + b"\0\0", "not accepted"),  # context 5
        (struct.pack(">IBB", 4, 1, 2) + b"\0\0", "without its command"),  # data first
        (struct.pack(">IBB", 40, 1, 3) + b"\0\0", "runs past"),  # longer than the PDU
        # a command element announcing 4 bytes of value, with none after it
        (struct.pack(">IBB", 10, 1, 3) + struct.pack("<HHI", 0, 0, 4), "truncated command"),
    ],
)
def test_malformed_pdvs_are_protocol_errors(pdv: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        Assembler(frozenset({1})).feed(pdv)


def test_a_command_where_a_data_set_was_due() -> None:
    assembler = Assembler(frozenset({1}))
    head = _bodies(fastsend.pdus(_find_command(1), 1, True, True, 0))[0]
    assert assembler.feed(head) == []  # its identifier is due next
    with pytest.raises(ProtocolError, match="where a data set was due"):
        assembler.feed(head)


def test_the_reader_takes_whole_pdus_within_their_deadline() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        reader = PduReader(ours, limit=100, idle=5.0, whole=0.3)
        theirs.sendall(wire.RELEASE_RP + wire.abort_pdu(2, 0)[:5])
        assert reader.read() == (wire.A_RELEASE_RP, b"\0\0\0\0")
        assert reader.arrived() is None  # part of the A-ABORT only: nothing waits
        theirs.sendall(wire.abort_pdu(2, 0)[5:])
        time.sleep(0.05)
        assert reader.arrived() == (wire.A_ABORT, b"\0\0\x02\0")
        theirs.sendall(struct.pack(">BBI", 4, 0, 50) + b"\0")  # begun, never finished
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            reader.read()
        assert time.monotonic() - started < 2  # the PDU's deadline, not the idle timeout
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(struct.pack(">BBI", 4, 0, 1000))  # more than this side takes
        with pytest.raises(ProtocolError, match="1000 bytes"):
            PduReader(ours, limit=100, idle=5.0, whole=5.0).read()


def test_the_reader_sees_the_peer_close() -> None:
    ours, theirs = socket.socketpair()
    with ours:
        theirs.close()
        with pytest.raises(wire.PeerClosed):
            PduReader(ours, limit=None, idle=1.0, whole=None).read()


def test_a_large_pdu_arrives_in_pieces_into_its_own_buffer() -> None:
    """A data set fragment larger than the read buffer's share comes out whole and exact
    however the peer splits it, whether waited for or taken as it arrives, with the PDU
    after it; a large PDU begun and never finished still times out on its deadline."""
    body = struct.pack(">IBB", 40002, 1, 2) + bytes(range(256)) * 156 + bytes(64)
    pdu = struct.pack(">BBI", wire.P_DATA_TF, 0, len(body)) + body
    assert len(body) > wire.DIRECT
    ours, theirs = socket.socketpair()
    with ours, theirs:
        reader = PduReader(ours, limit=None, idle=5.0, whole=2.0)
        theirs.sendall(pdu[:1000])
        assert reader.arrived() is None
        theirs.sendall(pdu[1000:30000])
        time.sleep(0.02)
        assert reader.arrived() is None  # begun: the rest goes straight into its buffer
        theirs.sendall(pdu[30000:] + wire.RELEASE_RP)
        kind, got = reader.read()
        assert (kind, bytes(got)) == (wire.P_DATA_TF, body)
        assert reader.read() == (wire.A_RELEASE_RP, b"\0\0\0\0")
        theirs.sendall(pdu[:20000])  # begun, never finished
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            reader.read()
        assert time.monotonic() - started < 4


def test_a_data_set_over_several_large_pdus_is_joined_once() -> None:
    """The fragments of a data set are kept as they came and joined into one bytes value."""
    data = bytes(range(256)) * 2048  # 512 KiB
    pdus = fastsend.pdus(_find_command(5), 1, True, True, 0) + fastsend.pdus(
        data, 1, False, True, 65536
    )
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.setblocking(False)
        reader, assembler = PduReader(ours, None, 5.0, 5.0), Assembler(frozenset({1}))
        done: list[wire.Message] = []
        at = 0
        while not done:
            if at < len(pdus):
                with contextlib.suppress(BlockingIOError):  # full: read first
                    at += theirs.send(pdus[at : at + 70000])
            while (pdu := reader.arrived()) is not None:
                done += assembler.feed(pdu[1])
    ((context, command, got),) = done
    assert context == 1 and command.message_id == 5 and type(got) is bytes and got == data
