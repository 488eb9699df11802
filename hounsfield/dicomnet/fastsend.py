"""Outgoing DIMSE messages encoded from bytes, handed to the DUL as ready P-DATA-TF PDUs.

pynetdicom encodes every outgoing command set as a pydicom Dataset, twice (once for its
group length), then wraps each fragment in P_DATA primitives that the DUL thread encodes
again as PDUs. For C-GET and C-MOVE that happens for each sub-operation's C-STORE request
and for each pending response, and it bounded retrieve speed (bench/RESULTS.md, "Notes").

Here the command set is written directly (it only holds US, UL, UI and AE elements in the
messages this covers; anything else, or an association with DIMSE-sent event handlers bound,
takes pynetdicom's own path), and the whole message is built as P-DATA-TF PDUs and queued
to the DUL as one primitive that its state machine sends as it is. The DUL still does the
sending, so messages stay in order with everything else it sends.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pynetdicom import evt, fsm
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import (
    _COMMAND_SET_KEYWORDS,
    _DATASET_KEYWORDS,
    _MESSAGE_TYPES,
)
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA

CHUNK = 4 << 20  # dataset bytes per queued primitive, so big objects are not held whole
BACKLOG = 32  # messages queued to the DUL before a sender waits (bounded memory for C-FIND)
NO_DATASET, HAS_DATASET = 0x0101, 0x0001
_PACK = {"US": struct.Struct("<H").pack, "UL": struct.Struct("<I").pack}
_ELEMENT_HEAD = struct.Struct("<HHI")
_PDU_HEAD = struct.Struct(">BBIIBB")  # type, reserved, PDU length, PDV length, context, control


class EncodedPData(P_DATA):
    """A P-DATA request whose PDUs are already encoded."""

    def __init__(self, encoded: bytes) -> None:
        super().__init__()
        self.encoded = encoded


def _elements(message: str) -> list[tuple[str, int, str]]:
    """(keyword, tag, VR) of a message's command elements after the group length, in order."""
    found = [(kw, tag_for_keyword(kw), "") for kw in _COMMAND_SET_KEYWORDS[message]]
    rows = [(kw, int(tag), dictionary_VR(tag)) for kw, tag, _ in found if tag]
    return sorted((r for r in rows if r[1] != 0), key=lambda r: r[1])


_FIELD_OF = {name: field for field, (name, _) in _MESSAGE_TYPES.items()}
_LAYOUT = {name: _elements(name) for name in _COMMAND_SET_KEYWORDS}


def _value(vr: str, value: Any) -> bytes | None:
    """One value in Implicit VR Little Endian, or None when this encoder does not cover it."""
    if vr in _PACK and isinstance(value, int):
        return _PACK[vr](value)
    if vr in ("UI", "AE") and isinstance(value, str):
        raw = value.strip().encode("ascii")
        return raw + (b"\0" if vr == "UI" else b" ") if len(raw) % 2 else raw
    return None


def encode_command(message: str, primitive: Any, has_dataset: bool) -> bytes | None:
    """The command set of `primitive` as `message` (e.g. "C-STORE-RQ"), group length first."""
    parts: list[bytes] = []
    for keyword, tag, vr in _LAYOUT[message]:
        if keyword == "CommandField":
            value: Any = _FIELD_OF[message]
        elif keyword == "CommandDataSetType":
            value = HAS_DATASET if has_dataset else NO_DATASET
        else:
            value = getattr(primitive, keyword, None)
            if value is None:
                continue
        encoded = _value(vr, value)
        if encoded is None:
            return None
        parts.append(_ELEMENT_HEAD.pack(tag >> 16, tag & 0xFFFF, len(encoded)) + encoded)
    body = b"".join(parts)
    return _ELEMENT_HEAD.pack(0, 0, 4) + _PACK["UL"](len(body)) + body


def pdus(data: bytes | memoryview, context_id: int, command: bool, last: bool, size: int) -> bytes:
    """`data` as P-DATA-TF PDUs of at most `size` bytes (0: one PDU); `last` ends the stream."""
    step = (size - 6) if size else max(len(data), 1)
    out: list[bytes | memoryview] = []
    starts = range(0, max(len(data), 1), step)
    for start in starts:
        piece = data[start : start + step]
        control = (1 if command else 0) | (2 if last and start + step >= len(data) else 0)
        out.append(_PDU_HEAD.pack(4, 0, len(piece) + 6, len(piece) + 2, context_id, control))
        out.append(piece)
    return b"".join(out)


def _dataset_chunks(primitive: Any, keyword: str | None) -> Iterator[bytes] | None:
    """The message's dataset bytes in pieces, or None when it has none."""
    path = getattr(primitive, "_dataset_path", None)
    if path is not None:
        return _file_chunks(Path(path[0]), int(path[1]))
    data = getattr(primitive, keyword, None) if keyword else None
    if isinstance(data, BytesIO):
        value = data.getvalue()
        return iter([value]) if value else None
    return None


def _file_chunks(path: Path, offset: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(offset)
        chunk = fh.read(CHUNK)
        while chunk:
            following = fh.read(CHUNK)
            yield chunk
            chunk = following


def _message_name(primitive: Any) -> str:
    kind = "RQ" if primitive.MessageIDBeingRespondedTo is None else "RSP"
    return f"{type(primitive).__name__.replace('_', '-')}-{kind}"


_original_send_msg = DIMSEServiceProvider.send_msg


def _encoded(
    self: DIMSEServiceProvider, primitive: Any, context_id: int
) -> tuple[bytes, Iterator[bytes] | None] | None:
    """The message's command set as PDUs and its dataset's pieces (None: it has none), or
    None when this module does not cover it (pynetdicom's own path sends it)."""
    message = _message_name(primitive)
    if message not in _LAYOUT or self.assoc.get_handlers(evt.EVT_DIMSE_SENT):
        return None
    keyword = _DATASET_KEYWORDS.get(message.replace("-", "_"))
    chunks = _dataset_chunks(primitive, keyword)
    command = encode_command(message, primitive, chunks is not None)
    if command is None:
        return None
    return pdus(command, context_id, True, True, self.maximum_pdu_size), chunks


def send_msg(self: DIMSEServiceProvider, primitive: Any, context_id: int) -> None:
    """pynetdicom's `send_msg`, with the command set and PDUs encoded here when covered."""
    encoded = _encoded(self, primitive, context_id)
    if encoded is None:
        return _original_send_msg(self, primitive, context_id)
    head, chunks = encoded
    _wait_for_room(self)
    if chunks is None:
        self.dul.send_pdu(EncodedPData(head))
        return None
    size = self.maximum_pdu_size
    current = next(chunks, b"")
    for following in chunks:
        self.dul.send_pdu(EncodedPData(head + pdus(current, context_id, False, False, size)))
        head, current = b"", following
    self.dul.send_pdu(EncodedPData(head + pdus(current, context_id, False, True, size)))
    return None


def encode_whole(self: DIMSEServiceProvider, primitive: Any, context_id: int) -> bytes | None:
    """The whole message as `send_msg` would send it, for `send_encoded` later; None when
    `send_msg` would not encode it here or its dataset is larger than one CHUNK."""
    encoded = _encoded(self, primitive, context_id)
    if encoded is None:
        return None
    head, chunks = encoded
    if chunks is None:
        return head
    data = next(chunks, b"")
    if next(chunks, None) is not None:
        return None
    return head + pdus(data, context_id, False, True, self.maximum_pdu_size)


def send_encoded(self: DIMSEServiceProvider, encoded: bytes) -> None:
    """Send a message `encode_whole` encoded."""
    _wait_for_room(self)
    self.dul.send_pdu(EncodedPData(encoded))


def _wait_for_room(self: DIMSEServiceProvider) -> None:
    """Encoding here is faster than the DUL sends: hold a sender while the DUL's queue is
    long, so that thousands of C-FIND responses are not all held in memory at once."""
    queue = self.dul.to_provider_queue
    while queue.qsize() > BACKLOG and self.dul.is_alive() and not self.dul._kill_thread:
        time.sleep(0.0002)


def _dt_1(dul: Any) -> str:
    """pynetdicom's DT-1 (send P-DATA-TF), sending already encoded PDUs as they are."""
    primitive = dul.to_provider_queue.get(False)
    encoded = getattr(primitive, "encoded", None)
    if encoded is None:
        dul._send(P_DATA_TF(primitive))
        return "Sta6"
    sock = getattr(dul.socket, "socket", None)
    try:
        if sock is None:
            raise OSError("connection closed")
        sock.sendall(encoded)
    except OSError:
        dul.event_queue.put("Evt17")
    return "Sta6"


def install() -> None:
    """Route outgoing DIMSE messages through this module (idempotent)."""
    if DIMSEServiceProvider.send_msg is send_msg:
        return
    DIMSEServiceProvider.send_msg = send_msg  # type: ignore[method-assign]
    description, _, state = fsm.ACTIONS["DT-1"]
    fsm.ACTIONS["DT-1"] = (description, _dt_1, state)
