"""The DIMSE side of query-only associations: C-ECHO and C-FIND answered by the server's
handlers, with the events they read (`queryassoc` runs the association around them)."""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Protocol

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import evt
from pynetdicom.dsutils import decode
from pynetdicom.presentation import PresentationContextTuple
from pynetdicom.sop_class import Verification

from hounsfield.dicomnet import fastsend
from hounsfield.dicomnet.preencoded import encode_identifier
from hounsfield.dicomnet.querywire import Message, PeerClosed, ProtocolError

log = logging.getLogger(__name__)

C_ECHO_RQ, C_FIND_RQ, C_CANCEL_RQ = 0x0030, 0x0020, 0x0FFF
PENDING = (0xFF00, 0xFF01)
HANDLER_FAILED, ENCODING_FAILED = 0xC311, 0xC312  # pynetdicom's C-FIND statuses for these
_ELEMENT = struct.Struct("<HHI")


class Answering(Protocol):
    """What this module needs of the association it answers on."""

    contexts: dict[int, PresentationContextTuple]  # accepted, by presentation context ID
    cancels: set[int]  # message IDs a C-CANCEL has arrived for
    peer_max_pdu: int  # 0: no limit

    def intervene(self, event: Any, qevent: QueryEvent) -> Any:
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


class QueryEvent:
    """What a handler gets: the association, and for a request its context and identifier."""

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
class _Primitive:
    AffectedSOPClassUID: str
    MessageIDBeingRespondedTo: int
    Status: int


def _reply(name: str, sop_class: str, msg_id: int, status: Any, with_dataset: bool) -> bytes:
    """A response's command set; `status` a code or a status Dataset (its Error Comment kept)."""
    code = int(status.Status) if isinstance(status, Dataset) else int(status)
    comment = str(status.get("ErrorComment", "")) if isinstance(status, Dataset) else ""
    command = fastsend.encode_command(name, _Primitive(sop_class, msg_id, code), with_dataset)
    assert command is not None  # US and UI values only
    if comment:  # Error Comment (0000,0902) is the last element of these responses
        raw = comment.encode("ascii", "replace")[:64]
        raw += b" " * (len(raw) % 2)
        body = command[12:] + _ELEMENT.pack(0, 0x0902, len(raw)) + raw
        command = _ELEMENT.pack(0, 0, 4) + struct.pack("<I", len(body)) + body
    return command


def answer(assoc: Answering, message: Message) -> None:
    """Answer one request: C-ECHO on the Verification context, C-FIND on a query model's;
    anything else is a protocol error (the association is aborted)."""
    context_id, command, dataset = message
    field = command.field
    if field == C_CANCEL_RQ:
        return  # for a request already answered
    context = assoc.contexts[context_id]
    request = Request(
        command.message_id or 0,
        command.text(0x0000_0002),
        command.number(0x0000_0700) or 0,
    )
    verification = str(context.abstract_syntax) == str(Verification)
    if field == C_ECHO_RQ and verification:
        qevent = QueryEvent(assoc, evt.EVT_C_ECHO, context, request)
        try:
            status: Any = assoc.intervene(evt.EVT_C_ECHO, qevent)
        except Exception:
            log.exception("C-ECHO handler failed")
            status = 0xC000
        _send(assoc, "C-ECHO-RSP", context_id, request, status, None)
    elif field == C_FIND_RQ and dataset is not None and not verification:
        _find(assoc, context_id, context, request, dataset)
    else:
        raise ProtocolError(f"command 0x{field or 0:04X} on {context.abstract_syntax}")


def _find(
    assoc: Answering,
    context_id: int,
    context: PresentationContextTuple,
    request: Request,
    dataset: bytes,
) -> None:
    """Send the handler's pending answers, then its final status (0xC311 when it fails or
    ends without one, 0xC312 when an answer cannot be encoded)."""
    assoc.cancels.discard(request.MessageID)
    qevent = QueryEvent(assoc, evt.EVT_C_FIND, context, request, dataset)
    syntax = UID(context.transfer_syntax)
    responses: Iterator[tuple[Any, Any]] = iter(())
    try:
        responses = iter(assoc.intervene(evt.EVT_C_FIND, qevent))
        for status, identifier in responses:
            code = int(status.Status) if isinstance(status, Dataset) else int(status)
            if code not in PENDING:
                _send(assoc, "C-FIND-RSP", context_id, request, status, None)
                return
            try:
                encoded = encode_identifier(
                    identifier, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated
                )
            except Exception:
                log.exception("C-FIND response identifier could not be encoded")
                encoded = None
            if encoded is None:
                _send(assoc, "C-FIND-RSP", context_id, request, ENCODING_FAILED, None)
                return
            _send(assoc, "C-FIND-RSP", context_id, request, status, bytes(encoded))
    except (PeerClosed, OSError):
        raise
    except Exception:
        log.exception("C-FIND handler failed")
    finally:
        close = getattr(responses, "close", None)
        if close is not None:
            close()
    _send(assoc, "C-FIND-RSP", context_id, request, HANDLER_FAILED, None)


def _send(
    assoc: Answering,
    name: str,
    context_id: int,
    request: Request,
    status: Any,
    dataset: bytes | None,
) -> None:
    """One response as P-DATA-TF PDUs no larger than the peer takes."""
    command = _reply(
        name, request.AffectedSOPClassUID, request.MessageID, status, dataset is not None
    )
    size = assoc.peer_max_pdu
    out = fastsend.pdus(command, context_id, True, True, size)
    if dataset is not None:
        out += fastsend.pdus(dataset, context_id, False, True, size)
    assoc.send(out)
