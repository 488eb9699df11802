"""Incoming PDUs read in large pieces, each within a deadline; C-STORE requests and responses
decoded from bytes.

pynetdicom reads every PDU from its socket 4 KB at a time (32 `recv` calls and copies for
each 128 KB P-DATA-TF PDU of a C-STORE); here the socket fills one buffer of the PDU's size.

pynetdicom decodes every incoming command set into a pydicom Dataset and then copies each
element onto the DIMSE primitive; for the C-STORE requests of ingest and the C-STORE
responses of C-GET/C-MOVE that is a fixed ~0.3 ms per object. Here those two messages are
read straight from the command's Implicit VR Little Endian bytes into the same primitive
pynetdicom builds (through its validating setters), with the data set collected as
pynetdicom does. Anything else (other messages, elements not listed below, a command split
over several fragments, handlers bound to EVT_DIMSE_RECV, a value a setter refuses) goes
to pynetdicom's own path, untouched.
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
import time
from io import BytesIO
from typing import Any, cast

from pynetdicom import evt
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.transport import AssociationSocket

_ELEMENT = struct.Struct("<HHI")
_US = struct.Struct("<H")
C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
NO_DATASET = 0x0101
_FIRST_BUFFER = 4 * 1024 * 1024  # grown beyond this only as bytes arrive
# Command elements these two messages may carry: tag -> (attribute, VR)
_FIELDS = {
    0x0000_0000: ("", "UL"),  # group length
    0x0000_0002: ("AffectedSOPClassUID", "UI"),
    0x0000_0100: ("", "US"),  # command field
    0x0000_0110: ("MessageID", "US"),
    0x0000_0120: ("MessageIDBeingRespondedTo", "US"),
    0x0000_0700: ("Priority", "US"),
    0x0000_0800: ("", "US"),  # command data set type
    0x0000_0900: ("Status", "US"),
    0x0000_1000: ("AffectedSOPInstanceUID", "UI"),
    0x0000_1030: ("MoveOriginatorApplicationEntityTitle", "AE"),
    0x0000_1031: ("MoveOriginatorMessageID", "US"),
}


class _Receiving:
    """A C-STORE message whose data set is still arriving."""

    __slots__ = ("context_id", "data", "primitive")

    def __init__(self, primitive: C_STORE, context_id: int) -> None:
        self.primitive, self.context_id, self.data = primitive, context_id, BytesIO()


def decode_command(raw: bytes | memoryview) -> tuple[C_STORE, bool] | None:
    """The C-STORE primitive of a complete command set and whether a data set follows;
    None when this decoder does not cover it."""
    values: dict[str, Any] = {}
    field = dataset_type = None
    at, end = 0, len(raw)
    while at < end:
        if at + 8 > end:
            return None
        group, element, length = _ELEMENT.unpack_from(raw, at)
        at += 8
        tag = group << 16 | element
        known = _FIELDS.get(tag)
        if known is None or at + length > end:
            return None
        name, vr = known
        value = raw[at : at + length]
        at += length
        if vr == "US":
            if length != 2:
                return None
            number = _US.unpack(value)[0]
            if tag == 0x0000_0100:
                field = number
            elif tag == 0x0000_0800:
                dataset_type = number
            else:
                values[name] = number
        elif vr in ("UI", "AE"):
            text = bytes(value)
            if not text.isascii():
                return None  # pynetdicom's own path answers for a corrupt command
            values[name] = text.decode("ascii").strip("\0 ")
    if field not in (C_STORE_RQ, C_STORE_RSP) or dataset_type is None:
        return None
    request = field == C_STORE_RQ
    if request != ("MessageID" in values) or request == ("MessageIDBeingRespondedTo" in values):
        return None
    primitive = C_STORE()
    try:
        for name, value in values.items():
            setattr(primitive, name, value)
    except (TypeError, ValueError):
        return None
    return primitive, dataset_type != NO_DATASET


def recv(self: AssociationSocket, nr_bytes: int) -> bytearray:
    """pynetdicom's `AssociationSocket.recv`: `nr_bytes` read, or fewer if the peer closed;
    TimeoutError once the PDU's deadline (`_pdu_deadline`, set by the DUL) has passed;
    ConnectionAbortedError for more than the PDU's limit (`_pdu_limit`, idem).

    The buffer grows as the bytes arrive: a PDU header may announce up to 4 GiB."""
    sock = cast(socket.socket, self.socket)
    limit: int | None = getattr(self, "_pdu_limit", None)
    if limit is not None and nr_bytes > limit:
        raise ConnectionAbortedError(f"a PDU of {nr_bytes} bytes announced (at most {limit})")
    deadline: float | None = getattr(self, "_pdu_deadline", None)
    own_timeout = sock.gettimeout() if deadline is not None else None
    buffer = bytearray(min(nr_bytes, _FIRST_BUFFER))
    done = 0
    try:
        while done < nr_bytes:
            if done == len(buffer):
                buffer.extend(bytes(min(nr_bytes, 2 * done) - done))
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{done} of {nr_bytes} bytes of a PDU arrived in time")
                sock.settimeout(left if own_timeout is None else min(left, own_timeout))
            with memoryview(buffer) as view:
                count = sock.recv_into(view[done:], len(buffer) - done)
            if not count:
                break
            done += count
    finally:
        if deadline is not None:
            sock.settimeout(own_timeout)
    del buffer[done:]
    return buffer


def ready(self: AssociationSocket) -> bool:
    """pynetdicom's `AssociationSocket.ready` with `poll` instead of `select`, which fails
    for descriptor numbers above FD_SETSIZE (1024): a node holding many connections could
    not read from its newer ones."""
    sock = self.socket
    if sock is None or self._is_connected is False:
        return False
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI)
        readable = bool(poller.poll(0))
    except (OSError, ValueError):
        self.event_queue.put("Evt17")  # the transport connection is closed
        return False
    if isinstance(sock, ssl.SSLSocket):  # buffered data `poll` does not see
        return readable or bool(sock.pending())
    return readable


_original_receive = DIMSEServiceProvider.receive_primitive


def receive_primitive(self: DIMSEServiceProvider, primitive: P_DATA) -> None:
    """pynetdicom's `receive_primitive`, with C-STORE messages decoded here when covered."""
    receiving: _Receiving | None = getattr(self, "_receiving", None)
    pdvs = primitive.presentation_data_value_list
    if receiving is None:
        if self.message is not None or not pdvs or pdvs[0][1][0] != 0x03:
            return _original_receive(self, primitive)
        if self.assoc.get_handlers(evt.EVT_DIMSE_RECV):
            return _original_receive(self, primitive)
        decoded = decode_command(memoryview(pdvs[0][1])[1:])
        if decoded is None:
            return _original_receive(self, primitive)
        message, has_dataset = decoded
        receiving = _Receiving(message, pdvs[0][0])
        if not has_dataset:
            return _deliver(self, receiving)
        self._receiving = receiving  # type: ignore[attr-defined]
        pdvs = pdvs[1:]
    for _context_id, fragment in pdvs:
        control = fragment[0]
        if control & 1:  # a command fragment before the data set ended
            self._receiving = None  # type: ignore[attr-defined]
            self.dul.event_queue.put("Evt19")
            return None
        receiving.data.write(memoryview(fragment)[1:])
        if control & 2:
            self._receiving = None  # type: ignore[attr-defined]
            return _deliver(self, receiving)
    return None


def _deliver(self: DIMSEServiceProvider, receiving: _Receiving) -> None:
    message = receiving.primitive
    if message.MessageIDBeingRespondedTo is None:
        message.DataSet = receiving.data
    message._context_id = receiving.context_id
    message._dataset_path = None
    message._dataset_file = None
    self.msg_queue.put((receiving.context_id, message))


def install() -> None:
    """Route incoming PDUs and P-DATA through this module (idempotent)."""
    AssociationSocket.recv = recv  # type: ignore[method-assign]
    AssociationSocket.ready = property(ready)  # type: ignore[method-assign,assignment]
    if DIMSEServiceProvider.receive_primitive is not receive_primitive:
        DIMSEServiceProvider.receive_primitive = receive_primitive  # type: ignore[method-assign]
