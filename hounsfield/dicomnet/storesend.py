"""A C-STORE request sent from a stored file whose File Meta is already known.

pynetdicom's `Association.send_c_store` (3.0) for a file path, less two per-request costs: it
reads the File Meta with pydicom to find where the dataset starts (`filemeta` has it), and
it pauses the reactor by polling (`checkpoint.Checkpoint.pause` is told when it has
stopped, and the reactor stays stopped between consecutive requests on the link). The
request primitive, its context and the status checks are pynetdicom's own.

A request can also be sent (`send_request`, from PDUs built ahead by `prepare`) and its
response read later (`read_response`): a retrieve sends its next file as soon as the peer
has answered the one before (`rawsend`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE

from hounsfield.dicomnet import fastsend
from hounsfield.dicomnet.checkpoint import TICK
from hounsfield.dicomnet.filemeta import FileMeta

LINGER = TICK  # seconds the reactor stays stopped after a request, waiting for the next
_CONTEXTS = "_hounsfield_store_contexts"
_IN_FLIGHT = "_hounsfield_store_in_flight"


@dataclass(frozen=True)
class Header:
    """What a C-STORE request says besides its object (pynetdicom's `send_c_store` options)."""

    msg_id: int = 1
    priority: int = 2
    originator_aet: str | None = None
    originator_id: int | None = None

    def following(self) -> Header:
        """The next sub-operation's, numbered as pynetdicom's retrieve loop numbers them."""
        return replace(self, msg_id=self.msg_id + 1 if self.msg_id < 0xFFFF else 1)


def send_file(
    assoc: Association,
    path: Path,
    meta: FileMeta,
    msg_id: int = 1,
    priority: int = 2,
    originator_aet: str | None = None,
    originator_id: int | None = None,
) -> Dataset:
    """C-STORE the dataset of the file at `path`; the response's status (empty: none came)."""
    header = Header(msg_id, priority, originator_aet, originator_id)
    if not send_request(assoc, path, meta, header):
        assoc._handle_no_response()
        return Dataset()
    return read_response(assoc)


def _request(assoc: Association, path: Path, meta: FileMeta, header: Header) -> tuple[C_STORE, int]:
    """The request primitive and the context it goes in."""
    req = C_STORE()
    req.MessageID = header.msg_id
    req.Priority = header.priority
    req.MoveOriginatorApplicationEntityTitle = header.originator_aet
    req.MoveOriginatorMessageID = header.originator_id
    context_id = _context_id(assoc, meta)
    req.AffectedSOPClassUID = meta.sop_class
    req.AffectedSOPInstanceUID = meta.sop_instance
    req._dataset_path = (path, meta.offset)  # type: ignore[attr-defined]
    return req, context_id


def prepare(
    assoc: Association, path: Path, meta: FileMeta, header: Header, size: int | None = None
) -> bytes | None:
    """The request's PDUs, built ahead of `send_request(..., encoded=...)` (None: it is
    built when sent; see `fastsend.encode_whole`). `size` is the file's, when known."""
    size = path.stat().st_size if size is None else size
    if size - meta.offset > fastsend.CHUNK:  # sent in pieces, as it is read
        return None
    req, context_id = _request(assoc, path, meta, header)
    return fastsend.encode_whole(assoc.dimse, req, context_id)


def send_request(
    assoc: Association,
    path: Path,
    meta: FileMeta,
    header: Header,
    key: object = None,
    encoded: bytes | None = None,
) -> bool:
    """Put the C-STORE request for the file at `path` on the wire (its `prepare`d PDUs
    when given) and return (False: the association ended first); its response is
    `read_response`'s. `key` names the request for `in_flight` until then. The reactor
    stays stopped meanwhile (unless it sends)."""
    if not assoc.is_established:
        raise RuntimeError(
            "The association with a peer SCP must be established before sending a C-STORE request"
        )
    req, context_id = (None, 0) if encoded is not None else _request(assoc, path, meta, header)
    reactor = threading.current_thread() is assoc  # a C-GET: the reactor itself serves it
    checkpoint: Any = assoc._reactor_checkpoint
    if not reactor:
        checkpoint.pause()
        if not assoc.is_established:  # the reactor had an abort or a release to take first
            checkpoint.set()
            return False
    try:
        if encoded is not None:
            fastsend.send_encoded(assoc.dimse, encoded)
        else:
            assoc.dimse.send_msg(req, context_id)
    except BaseException:
        if not reactor:
            checkpoint.set()
        raise
    assoc.__dict__[_IN_FLIGHT] = key
    return True


def in_flight(assoc: Association) -> object:
    """The `key` of the request sent and not yet answered on `assoc`, or None."""
    return assoc.__dict__.get(_IN_FLIGHT)


def read_response(assoc: Association) -> Dataset:
    """The status of the request `send_request` sent (empty: none came)."""
    assoc.__dict__[_IN_FLIGHT] = None
    reactor = threading.current_thread() is assoc
    checkpoint: Any = assoc._reactor_checkpoint
    try:
        rsp = assoc.dimse.get_msg(block=True)[1]
    except BaseException:
        if not reactor:
            checkpoint.set()
        raise
    if not reactor:
        if rsp is None:
            checkpoint.set()
        else:
            checkpoint.linger(LINGER)
    if rsp is None:
        assoc._handle_no_response()
        return Dataset()
    return assoc._check_received_status(rsp)


def _context_id(assoc: Association, meta: FileMeta) -> int:
    """The accepted context to send `meta`'s object in, as pynetdicom chooses it (cached:
    an association's contexts do not change, and pynetdicom's search walks them all)."""
    cache: dict[tuple[str, str], int] = assoc.__dict__.setdefault(_CONTEXTS, {})
    key = (meta.sop_class, meta.transfer_syntax)
    found = cache.get(key)
    if found is None:
        context = assoc._get_valid_context(*key, "scu", allow_conversion=False)
        found = cache[key] = int(context.context_id)  # type: ignore[arg-type]
    return found
