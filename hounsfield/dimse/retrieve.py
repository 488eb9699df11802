"""C-GET and C-MOVE SCP: send stored bytes as they are, or decompressed when the peer needs it."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext

from hounsfield.archive.context import Archive
from hounsfield.archive.query import Located, locate
from hounsfield.archive.retrieve import Plan, plan
from hounsfield.dicomnet.contexts import query_contexts, storage_contexts
from hounsfield.dicomnet.rawsend import StoredFile
from hounsfield.dicomnet.scu import VERIFICATION, associate
from hounsfield.dimse.partition import called_partition
from hounsfield.dimse.status import query_failure
from hounsfield.metrics import BYTES_SENT, INSTANCES_SENT, LATENCY
from hounsfield.sites.devices import find_device
from hounsfield.sites.peers import peer_of

log = logging.getLogger(__name__)
CANCEL, PENDING = 0xFE00, 0xFF00


def _accepted(assoc: Association, role: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for cx in assoc.accepted_contexts:
        if (role == "scp" and not cx.as_scp) or (role == "scu" and not cx.as_scu):
            continue
        out.setdefault(str(cx.abstract_syntax), set()).add(str(cx.transfer_syntax[0]))
    return out


def _items(
    event: Event, matches: list[Located], accepted: dict[str, set[str]], service: str
) -> Iterator[tuple[int, Any]]:
    """The (status, path-or-dataset) yields for each match, honouring C-CANCEL."""
    for located in matches:
        if event.is_cancelled:
            yield CANCEL, None
            return
        try:
            chosen: Plan = plan(located, accepted.get(located.sop_class, set()))
        except Exception as exc:
            log.warning("%s: %s", service, exc)
            failed = Dataset()
            failed.SOPInstanceUID = located.sop_instance
            failed.SOPClassUID = located.sop_class
            yield PENDING, failed  # pynetdicom counts a dataset it cannot send as failed
            continue
        INSTANCES_SENT.labels(service).inc()
        BYTES_SENT.labels(service).inc(located.size)
        if chosen.path is not None:
            yield PENDING, StoredFile(chosen.path, located.sop_class, located.sop_instance)
        else:
            yield PENDING, chosen.dataset


def handle_get(event: Event, archive: Archive) -> Iterator[Any]:
    """C-GET: the objects go back over the requesting association."""
    started = time.perf_counter()
    try:
        matches = locate(archive, event.identifier, partition=called_partition(archive, event))
    except Exception as exc:
        yield 0
        yield query_failure("c_get", exc), None
        return
    yield len(matches)
    yield from _items(event, matches, _accepted(event.assoc, "scu"), "c_get")
    LATENCY.labels("c_get").observe(time.perf_counter() - started)


def move_contexts(matches: list[Located]) -> list[PresentationContext]:
    """The C-MOVE sub-association's contexts: each stored (SOP class, syntax) pair on its own,
    so that the destination takes every object as stored, and a little endian fallback per
    SOP class (see `dicomnet.contexts`)."""
    return storage_contexts(((m.sop_class, m.transfer_syntax) for m in matches), fit=True)


def handle_move(event: Event, archive: Archive) -> Iterator[Any]:
    """C-MOVE: open an association to the known destination (through the SCU layer, as the
    called partition's AE title; see `dicomnet.serving`) and send the matches there."""
    started = time.perf_counter()
    destination = str(event.move_destination or "").strip()
    try:
        device = find_device(archive, destination)
    except Exception as exc:
        log.error("C-MOVE: cannot look up destination %r: %s", destination, exc)
        device = None
    if device is None:
        log.warning("C-MOVE to unknown destination %r refused", destination)
        yield None, None  # pynetdicom answers 0xA801 Move Destination unknown
        return
    partition = called_partition(archive, event)
    holder: dict[str, Association] = {}
    matches: list[Located] = []

    def _open() -> Association:
        contexts = move_contexts(matches) or query_contexts([VERIFICATION])
        link = associate(peer_of(device), archive.settings, contexts, calling_ae=partition.ae_title)
        holder["assoc"] = link.assoc
        return link.assoc

    yield device.host, device.port, {"opener": _open}
    try:
        matches.extend(locate(archive, event.identifier, partition=partition))
    except Exception as exc:
        query_failure("c_move", exc)  # logged and counted; pynetdicom answers 0xC513
        raise
    yield len(matches)
    accepted = _accepted(holder["assoc"], "scu") if "assoc" in holder else {}
    yield from _items(event, matches, accepted, "c_move")
    LATENCY.labels("c_move").observe(time.perf_counter() - started)
