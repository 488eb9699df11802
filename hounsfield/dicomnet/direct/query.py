"""C-ECHO and C-FIND on the direct path, answered by the server's handlers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import evt
from pynetdicom.presentation import PresentationContextTuple
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from hounsfield.dicomnet.direct.dimse import Answering, DirectEvent, Reply, Request, send
from hounsfield.dicomnet.direct.wire import Message, PeerClosed, ProtocolError
from hounsfield.dicomnet.preencoded import encode_identifier

log = logging.getLogger(__name__)

SYNTAXES = frozenset(  # the abstract syntaxes answered here
    {
        str(Verification),
        str(PatientRootQueryRetrieveInformationModelFind),
        str(StudyRootQueryRetrieveInformationModelFind),
    }
)
C_ECHO_RQ, C_FIND_RQ, C_CANCEL_RQ = 0x0030, 0x0020, 0x0FFF
PENDING = (0xFF00, 0xFF01)
HANDLER_FAILED, ENCODING_FAILED = 0xC311, 0xC312  # pynetdicom's C-FIND statuses for these


def _replying(request: Request) -> Reply:
    return Reply(request.AffectedSOPClassUID, request.MessageID)


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
        qevent = DirectEvent(assoc, evt.EVT_C_ECHO, context, request)
        try:
            status: Any = assoc.intervene(evt.EVT_C_ECHO, qevent)
        except Exception:
            log.exception("C-ECHO handler failed")
            status = 0xC000
        send(assoc, "C-ECHO-RSP", context_id, _replying(request), status, None)
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
    qevent = DirectEvent(assoc, evt.EVT_C_FIND, context, request, dataset)
    syntax = UID(context.transfer_syntax)
    responses: Iterator[tuple[Any, Any]] = iter(())
    try:
        responses = iter(assoc.intervene(evt.EVT_C_FIND, qevent))
        for status, identifier in responses:
            code = int(status.Status) if isinstance(status, Dataset) else int(status)
            if code not in PENDING:
                send(assoc, "C-FIND-RSP", context_id, _replying(request), status, None)
                return
            try:
                encoded = encode_identifier(
                    identifier, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated
                )
            except Exception:
                log.exception("C-FIND response identifier could not be encoded")
                encoded = None
            if encoded is None:
                send(assoc, "C-FIND-RSP", context_id, _replying(request), ENCODING_FAILED, None)
                return
            send(assoc, "C-FIND-RSP", context_id, _replying(request), status, bytes(encoded))
    except (PeerClosed, OSError):
        raise
    except Exception:
        log.exception("C-FIND handler failed")
    finally:
        close = getattr(responses, "close", None)
        if close is not None:
            close()
    send(assoc, "C-FIND-RSP", context_id, _replying(request), HANDLER_FAILED, None)
