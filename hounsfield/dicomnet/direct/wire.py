"""The bytes of the direct path: the request looked at, PDUs read, messages assembled.

The A-ASSOCIATE-RQ is scanned by hand to decide whether the direct path serves an association
(its proposed abstract syntaxes, and whether it asks for SCP/SCU roles) before anything is
consumed or decoded; pynetdicom's PDU classes decode and encode the association PDUs of
those it serves. The rest is the little of PS3.8 its services need: PDUs off a blocking
socket, P-DATA-TF split into PDVs and assembled into command and data sets, command sets read.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Iterator

A_ASSOCIATE_RQ, A_ASSOCIATE_AC, A_ASSOCIATE_RJ = 0x01, 0x02, 0x03
P_DATA_TF, A_RELEASE_RQ, A_RELEASE_RP, A_ABORT = 0x04, 0x05, 0x06, 0x07
PRESENTATION_CONTEXT, ABSTRACT_SYNTAX, USER_INFORMATION, ROLE_SELECTION = 0x20, 0x30, 0x50, 0x54
NO_DATASET = 0x0101
READ = 1 << 16  # bytes asked of the socket at a time
DIRECT = 1 << 14  # a PDU body at least this large is received into a buffer of its own
RQ_FIXED = 74  # PDU header, version, reserved, called and calling AE titles, reserved
_HEAD = struct.Struct(">BBI")
_ITEM = struct.Struct(">BBH")
_PDV = struct.Struct(">IBB")
_ELEMENT = struct.Struct("<HHI")
_US = struct.Struct("<H")
RELEASE_RP = _HEAD.pack(A_RELEASE_RP, 0, 4) + b"\0\0\0\0"


Body = bytes | bytearray  # a PDU's body: a P-DATA-TF's is a bytearray (see PduReader)


class ProtocolError(Exception):
    """The peer sent something this side cannot go on from: the association is aborted."""


class PeerClosed(Exception):
    """The peer closed the connection."""


def abort_pdu(source: int = 0x02, reason: int = 0x00) -> bytes:
    """An A-ABORT (source 0: service user, 2: service provider)."""
    return _HEAD.pack(A_ABORT, 0, 4) + bytes([0, 0, source, reason])


def _items(data: bytes | memoryview, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type, start of value, end of value) of the items between `start` and `end`."""
    at = start
    while at + 4 <= end:
        kind, _, size = _ITEM.unpack_from(data, at)
        if at + 4 + size > end:
            raise ValueError("item runs past its container")
        yield kind, at + 4, at + 4 + size
        at += 4 + size


def proposed(head: bytes) -> tuple[frozenset[str], bool] | None:
    """The abstract syntaxes a whole A-ASSOCIATE-RQ in `head` proposes, and whether it asks
    for SCP/SCU role selection; None when `head` is not such a request, or not all of it."""
    if len(head) < RQ_FIXED or head[0] != A_ASSOCIATE_RQ:
        return None
    end = 6 + _HEAD.unpack_from(head)[2]
    if len(head) < end:
        return None
    syntaxes: set[str] = set()
    roles = False
    try:
        for kind, start, stop in _items(head, RQ_FIXED, end):
            if kind == PRESENTATION_CONTEXT:  # context ID and three reserved bytes first
                for sub, s_start, s_stop in _items(head, start + 4, stop):
                    if sub == ABSTRACT_SYNTAX:
                        syntaxes.add(head[s_start:s_stop].decode("ascii").rstrip("\0 "))
            elif kind == USER_INFORMATION:
                roles = roles or any(s == ROLE_SELECTION for s, _, _ in _items(head, start, stop))
    except (ValueError, UnicodeDecodeError):
        return None
    return frozenset(syntaxes), roles


class PduReader:
    """Whole PDUs off a socket: the next one waited for at most `idle` seconds, and once it
    has begun, all of it within `whole` seconds (a socket timeout alone restarts with every
    byte: a peer sending a byte a second would hold the thread); `arrived` takes only what
    is already there.

    Small PDUs come out of a read buffer; the body of a large one (a data set's fragment) is
    received straight into its own buffer, so its bytes are copied once off the socket
    rather than through a chunk, the read buffer and a slice of it."""

    def __init__(
        self, sock: socket.socket, limit: int | None, idle: float | None, whole: float | None
    ) -> None:
        self.sock, self.limit, self.idle, self.whole = sock, limit, idle, whole
        self._buffer = bytearray()
        self._body: bytearray | None = None  # a large PDU's body, received into directly
        self._kind = self._got = 0  # its type, and how much of it has come
        self._started = 0.0  # time.monotonic() when the first byte of the PDU came
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN | select.POLLPRI)

    def _complete(self) -> tuple[int, Body] | None:
        large = self._body
        if large is not None:
            if self._got < len(large):
                return None
            self._body = None
            self._started = time.monotonic()  # what is left belongs to the next PDU
            return self._kind, large
        buffer = self._buffer
        if len(buffer) < 6:
            return None
        kind, _, length = _HEAD.unpack_from(buffer)
        if self.limit is not None and length > self.limit:
            raise ProtocolError(f"a PDU of {length} bytes")
        if len(buffer) < 6 + length:
            if length >= DIRECT:  # the rest goes straight into the body's own buffer
                self._body, self._kind, self._got = bytearray(length), kind, len(buffer) - 6
                with memoryview(buffer) as view:
                    self._body[: self._got] = view[6:]
                buffer.clear()
            return None
        body = buffer[6 : 6 + length] if kind == P_DATA_TF else bytes(buffer[6 : 6 + length])
        del buffer[: 6 + length]
        self._started = time.monotonic()
        return kind, body

    def _fill(self, wait: bool) -> bool:
        """Read what the socket has (waiting for it if `wait`); False when nothing came.

        The socket is read without a timeout of its own (Python polls before every read of
        a socket that has one, and setting one is a system call too): a read that finds
        nothing waits in poll() for what is left of the time."""
        sock = self.sock
        if sock.gettimeout() != 0.0:  # `send` gives it one
            sock.setblocking(False)
        while True:
            try:
                if self._body is not None:
                    with memoryview(self._body) as view:
                        count = sock.recv_into(view[self._got :])
                    if not count:
                        raise PeerClosed()
                    self._got += count
                    return True
                chunk = sock.recv(READ)
                break
            except BlockingIOError:
                if not wait:
                    return False
                timeout = self._timeout()
                if not self._poll.poll(None if timeout is None else timeout * 1000):
                    raise TimeoutError("timed out") from None
        if not chunk:
            raise PeerClosed()
        if not self._buffer:
            self._started = time.monotonic()
        self._buffer += chunk
        return True

    def _timeout(self) -> float | None:
        if (not self._buffer and self._body is None) or self.whole is None:
            return self.idle
        left = self._started + self.whole - time.monotonic()
        if left <= 0:
            raise TimeoutError("a PDU did not arrive whole within the DIMSE timeout")
        return left if self.idle is None else min(left, self.idle)

    def read(self) -> tuple[int, Body]:
        """The next PDU (type, body: a bytearray for P-DATA-TF, else bytes), waiting for it."""
        while (pdu := self._complete()) is None:
            self._fill(True)
        return pdu

    def arrived(self) -> tuple[int, Body] | None:
        """The next PDU if all of it has arrived, without waiting."""
        while (pdu := self._complete()) is None:
            if not self._poll.poll(0) or not self._fill(False):
                return None
        return pdu


class Command:
    """A DIMSE command set's elements (Implicit VR Little Endian, group 0000)."""

    def __init__(self, raw: bytes) -> None:
        self.values: dict[int, bytes] = {}
        at, end = 0, len(raw)
        while at < end:
            if at + 8 > end:
                raise ProtocolError("a truncated command set")
            group, element, length = _ELEMENT.unpack_from(raw, at)
            at += 8
            if at + length > end:
                raise ProtocolError("a truncated command element")
            self.values[group << 16 | element] = raw[at : at + length]
            at += length

    def number(self, tag: int) -> int | None:
        """A US value."""
        raw = self.values.get(tag)
        return _US.unpack(raw)[0] if raw is not None and len(raw) == 2 else None

    def text(self, tag: int) -> str:
        """A UI or AE value."""
        return self.values.get(tag, b"").decode("ascii", "replace").strip("\0 ")

    @property
    def field(self) -> int | None:
        """Command Field."""
        return self.number(0x0000_0100)

    @property
    def message_id(self) -> int | None:
        """Message ID."""
        return self.number(0x0000_0110)

    @property
    def has_dataset(self) -> bool:
        """Whether a data set follows (Command Data Set Type)."""
        return self.number(0x0000_0800) != NO_DATASET


Message = tuple[int, Command, bytes | None]  # presentation context ID, command, data set


class Assembler:
    """DIMSE messages out of P-DATA-TF bodies, in the order their last fragment arrives."""

    def __init__(self, contexts: frozenset[int]) -> None:
        self.contexts = contexts
        self._command = bytearray()
        self._dataset: list[memoryview] = []  # the fragments so far, joined once at the end
        self._waiting: tuple[int, Command] | None = None  # a command whose data set comes

    def feed(self, body: Body) -> list[Message]:
        """The messages the PDVs of one P-DATA-TF complete."""
        done: list[Message] = []
        at, end = 0, len(body)
        while at < end:
            if at + 6 > end:
                raise ProtocolError("a truncated PDV")
            length, context, control = _PDV.unpack_from(body, at)
            if length < 2 or at + 4 + length > end:
                raise ProtocolError("a PDV runs past its PDU")
            if context not in self.contexts:
                raise ProtocolError(f"a PDV on presentation context {context}, not accepted")
            data = memoryview(body)[at + 6 : at + 4 + length]
            at += 4 + length
            if control & 1:
                if self._waiting is not None:
                    raise ProtocolError("a command set where a data set was due")
                self._command += data
                if control & 2:
                    command = Command(bytes(self._command))
                    self._command.clear()
                    if command.has_dataset:
                        self._waiting = (context, command)
                    else:
                        done.append((context, command, None))
            else:
                if self._waiting is None or self._waiting[0] != context:
                    raise ProtocolError("a data set without its command")
                self._dataset.append(data)
                if control & 2:
                    done.append((context, self._waiting[1], b"".join(self._dataset)))
                    self._dataset = []
                    self._waiting = None
        return done
