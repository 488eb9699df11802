"""What the direct path's services share: the association they answer on, the events handlers
get, and responses encoded and sent as P-DATA-TF PDUs."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Protocol

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.dsutils import decode
from pynetdicom.presentation import PresentationContextTuple

from hounsfield.dicomnet import fastsend

_ELEMENT = struct.Struct("<HHI")


class Answering(Protocol):
    """What the services need of the association they answer on."""

    contexts: dict[int, PresentationContextTuple]  # accepted, by presentation context ID
    cancels: set[int]  # message IDs a C-CANCEL has arrived for
    peer_max_pdu: int  # 0: no limit

    def intervene(self, event: Any, qevent: Any) -> Any:
        """Call the server's handler of an intervention event (or pynetdicom's default)."""
        ...

    def cancelled(self, msg_id: int) -> bool:
        """Whether a C-CANCEL for `msg_id` has arrived (or the peer has gone)."""
        ...

    def send(self, data: bytes) -> None:
        """Put PDUs on the wire."""
        ...


@dataclass
class Request:
    """The request of a C-ECHO or C-FIND, as the handlers read it (`event.request`)."""

    MessageID: int
    AffectedSOPClassUID: str
    Priority: int


class DirectEvent:
    """What a handler gets: the association, and for a C-ECHO or C-FIND its request,
    presentation context and identifier (a C-STORE's handler gets pynetdicom's Event)."""

    def __init__(
        self,
        assoc: Any,
        event: Any,
        context: PresentationContextTuple | None = None,
        request: Request | None = None,
        dataset: bytes | None = None,
    ) -> None:
        self.assoc, self.event, self.context, self.request = assoc, event, context, request
        self._dataset = dataset
        self._identifier: Dataset | None = None

    @property
    def identifier(self) -> Dataset:
        """The request's identifier, decoded on first use."""
        if self._identifier is None:
            assert self.context is not None and self._dataset is not None
            syntax = UID(self.context.transfer_syntax)
            self._identifier = decode(
                BytesIO(self._dataset),
                syntax.is_implicit_VR,
                syntax.is_little_endian,
                syntax.is_deflated,
            )
        return self._identifier

    @property
    def is_cancelled(self) -> bool:
        """Whether the peer sent a C-CANCEL for this request (looks at what has arrived)."""
        assert self.request is not None
        return bool(self.assoc.cancelled(self.request.MessageID))


@dataclass
class Reply:
    """What a response repeats of its request."""

    AffectedSOPClassUID: str
    MessageIDBeingRespondedTo: int
    AffectedSOPInstanceUID: str | None = None
    Status: int = 0


def _command(name: str, reply: Reply, status: Any, with_dataset: bool) -> bytes:
    """A response's command set; `status` a code or a status Dataset (its Error Comment kept,
    in tag order)."""
    reply.Status = int(status.Status) if isinstance(status, Dataset) else int(status)
    comment = str(status.get("ErrorComment", "")) if isinstance(status, Dataset) else ""
    command = fastsend.encode_command(name, reply, with_dataset)
    assert command is not None  # US and UI values only
    if comment:
        raw = comment.encode("ascii", "replace")[:64]
        raw += b" " * (len(raw) % 2)
        at = 12  # after the group length: the elements up to Status (0000,0900)
        while at < len(command) and _ELEMENT.unpack_from(command, at)[1] <= 0x0900:
            at += 8 + _ELEMENT.unpack_from(command, at)[2]
        body = command[12:at] + _ELEMENT.pack(0, 0x0902, len(raw)) + raw + command[at:]
        command = _ELEMENT.pack(0, 0, 4) + struct.pack("<I", len(body)) + body
    return command


def send(
    assoc: Answering,
    name: str,
    context_id: int,
    reply: Reply,
    status: Any,
    dataset: bytes | None,
) -> None:
    """One response (e.g. "C-FIND-RSP") as P-DATA-TF PDUs no larger than the peer takes."""
    command = _command(name, reply, status, dataset is not None)
    size = assoc.peer_max_pdu
    out = fastsend.pdus(command, context_id, True, True, size)
    if dataset is not None:
        out += fastsend.pdus(dataset, context_id, False, True, size)
    assoc.send(out)
