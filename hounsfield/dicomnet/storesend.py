"""A C-STORE request sent from a stored file whose File Meta is already known.

pynetdicom's `Association.send_c_store` (3.0) for a file path, less two per-request costs: it
reads the File Meta with pydicom to find where the dataset starts (`filemeta` has it), and
it pauses the reactor by polling (`checkpoint.Checkpoint.pause` is told when it has
stopped, and the reactor stays stopped between consecutive requests on the link). The
request primitive, its context and the status checks are pynetdicom's own.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE

from hounsfield.dicomnet.checkpoint import TICK
from hounsfield.dicomnet.filemeta import FileMeta

LINGER = TICK  # seconds the reactor stays stopped after a request, waiting for the next
_CONTEXTS = "_hounsfield_store_contexts"


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
    if not assoc.is_established:
        raise RuntimeError(
            "The association with a peer SCP must be established before sending a C-STORE request"
        )
    req = C_STORE()
    req.MessageID = msg_id
    req.Priority = priority
    req.MoveOriginatorApplicationEntityTitle = originator_aet
    req.MoveOriginatorMessageID = originator_id
    context_id = _context_id(assoc, meta)
    req.AffectedSOPClassUID = meta.sop_class
    req.AffectedSOPInstanceUID = meta.sop_instance
    req._dataset_path = (path, meta.offset)  # type: ignore[attr-defined]
    rsp = _exchange(assoc, req, context_id)
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


def _exchange(assoc: Association, req: C_STORE, context_id: int) -> Any:
    """Send `req` with the reactor stopped (unless this is the reactor); the response."""
    dimse = assoc.dimse
    if threading.current_thread() is assoc:  # a C-GET: the reactor itself serves it
        dimse.send_msg(req, context_id)
        return dimse.get_msg(block=True)[1]
    checkpoint: Any = assoc._reactor_checkpoint
    checkpoint.pause()
    if not assoc.is_established:  # the reactor had an abort or a release to take first
        checkpoint.set()
        return None
    try:
        dimse.send_msg(req, context_id)
        rsp = dimse.get_msg(block=True)[1]
    except BaseException:
        checkpoint.set()
        raise
    if rsp is None:
        checkpoint.set()
    else:
        checkpoint.linger(LINGER)
    return rsp
