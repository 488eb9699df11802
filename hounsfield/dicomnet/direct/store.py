"""C-STORE on the direct path: the server's handler called with pynetdicom's own Event (its
`dataset`, `file_meta` and `encoded_dataset` work as on pynetdicom's path), and its status
sent back as pynetdicom's Storage SCP does."""

from __future__ import annotations

import logging
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContextTuple

from hounsfield.dicomnet.direct import query
from hounsfield.dicomnet.direct.dimse import Answering, Reply, send
from hounsfield.dicomnet.direct.wire import Command, Message, ProtocolError

log = logging.getLogger(__name__)

C_STORE_RQ = 0x0001
HANDLER_FAILED = 0xC211  # pynetdicom's status for an exception in the C-STORE handler
NO_STATUS, NOT_A_STATUS = 0xC001, 0xC002  # a Dataset without Status; neither int nor Dataset


def request_of(command: Command, dataset: bytes) -> C_STORE:
    """The C-STORE request primitive a handler reads (`event.request`), through pynetdicom's
    validating setters; a value they refuse is a protocol error."""
    primitive = C_STORE()
    try:
        primitive.MessageID = command.message_id
        primitive.AffectedSOPClassUID = command.text(0x0000_0002)
        primitive.AffectedSOPInstanceUID = command.text(0x0000_1000)
        primitive.Priority = command.number(0x0000_0700) or 0
        if originator := command.text(0x0000_1030):
            primitive.MoveOriginatorApplicationEntityTitle = originator
        if (originator_id := command.number(0x0000_1031)) is not None:
            primitive.MoveOriginatorMessageID = originator_id
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"a C-STORE request pynetdicom would not take: {exc}") from exc
    primitive.DataSet = BytesIO(dataset)
    return primitive


def status_of(returned: Any) -> Any:
    """The handler's status as pynetdicom's `validate_status` takes it: a Dataset with a
    Status (its Error Comment kept) or an int; anything else a failure."""
    if isinstance(returned, Dataset):
        if "Status" in returned:
            return returned
        log.error("C-STORE handler returned a Dataset without a Status element")
        return NO_STATUS
    if isinstance(returned, int):
        return returned
    log.error("C-STORE handler returned an invalid status")
    return NOT_A_STATUS


def answer(assoc: Answering, message: Message) -> None:
    """Store one C-STORE request (on a storage context; anything else is a protocol error)."""
    context_id, command, dataset = message
    context = assoc.contexts[context_id]
    if dataset is None or str(context.abstract_syntax) in query.SYNTAXES:
        raise ProtocolError(f"a C-STORE request on {context.abstract_syntax}")
    _store(assoc, context_id, context, command, dataset)


def _store(
    assoc: Answering,
    context_id: int,
    context: PresentationContextTuple,
    command: Command,
    dataset: bytes,
) -> None:
    """Call the server's C-STORE handler, then send its status."""
    request = request_of(command, dataset)
    event = Event(assoc, evt.EVT_C_STORE, {"request": request, "context": context})  # type: ignore[arg-type]
    try:
        status = status_of(assoc.intervene(evt.EVT_C_STORE, event))
    except Exception:
        log.exception("Exception in handler bound to 'evt.EVT_C_STORE'")
        status = HANDLER_FAILED
    reply = Reply(
        str(request.AffectedSOPClassUID),
        int(request.MessageID or 0),
        str(request.AffectedSOPInstanceUID),
    )
    send(assoc, "C-STORE-RSP", context_id, reply, status, None)
