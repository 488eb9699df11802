"""C-GET and C-MOVE SCP: stored bytes as they are (decompressed when the peer needs it), and
through a virtual partition what its remote members hold, fetched and passed on."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext

from hounsfield.archive.context import Archive
from hounsfield.archive.query import Located, locate
from hounsfield.archive.retrieve import Plan, plan
from hounsfield.audit.events import MINOR_FAILURE, SUCCESS
from hounsfield.audit.trail import record
from hounsfield.catalog.partitions import Partition
from hounsfield.dicomnet.contexts import COMMON_STORAGE, query_contexts, storage_contexts
from hounsfield.dicomnet.rawsend import StoredFile
from hounsfield.dicomnet.scu import VERIFICATION, associate
from hounsfield.dimse.audit import act_as_caller, subject
from hounsfield.dimse.partition import called_partition
from hounsfield.dimse.status import query_failure
from hounsfield.metrics import BYTES_SENT, INSTANCES_SENT, LATENCY
from hounsfield.sites.devices import find_device
from hounsfield.sites.peers import peer_of
from hounsfield.sites.virtual_fetch import Fetch, Missing, Remote, sources

log = logging.getLogger(__name__)
CANCEL, PENDING = 0xFE00, 0xFF00


def _accepted(assoc: Association, role: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for cx in assoc.accepted_contexts:
        if (role == "scp" and not cx.as_scp) or (role == "scu" and not cx.as_scu):
            continue
        out.setdefault(str(cx.abstract_syntax), set()).add(str(cx.transfer_syntax[0]))
    return out


@contextmanager
def _audited(archive: Archive, event: Event, part: Partition, what: str) -> Iterator[list[int]]:
    """Record the retrieve in the audit trail when it ends: [offered, failed] counts."""
    act_as_caller(event)
    counts = [0, 0]
    outcome = MINOR_FAILURE
    try:
        yield counts
        outcome = SUCCESS if counts[1] == 0 else MINOR_FAILURE
    finally:
        try:
            patient_id, study_uid = subject(event.identifier)
        except Exception:
            patient_id = study_uid = ""
        detail = what if not counts[1] else f"{what}; {counts[1]} not sent"
        record(
            archive.engine,
            "retrieve",
            outcome=outcome,
            partition=part.ae_title,
            count=counts[0] - counts[1],
            patient_id=patient_id,
            study_uid=study_uid,
            detail=detail,
        )


def _items(
    event: Event,
    matches: Iterable[Located | Missing],
    accepted: dict[str, set[str]],
    service: str,
    counts: list[int] | None = None,
) -> Iterator[tuple[int, Any]]:
    """The (status, path-or-dataset) yields for each match, honouring C-CANCEL; an object
    that cannot be sent (or that a virtual partition's member did not deliver) fails.
    `counts` gets [offered, failed] added."""
    counts = counts if counts is not None else [0, 0]
    for located in matches:
        if event.is_cancelled:
            yield CANCEL, None
            return
        counts[0] += 1
        try:
            if isinstance(located, Missing):
                raise LookupError(f"{located.sop_instance} not fetched: {located.reason}")
            chosen: Plan = plan(located, accepted.get(located.sop_class, set()))
        except Exception as exc:
            log.warning("%s: %s", service, exc)
            failed = Dataset()
            failed.SOPInstanceUID = located.sop_instance
            failed.SOPClassUID = located.sop_class
            counts[1] += 1
            yield PENDING, failed  # pynetdicom counts a dataset it cannot send as failed
            continue
        INSTANCES_SENT.labels(service).inc()
        BYTES_SENT.labels(service).inc(located.size)
        if chosen.path is not None:
            yield (
                PENDING,
                StoredFile(chosen.path, located.sop_class, located.sop_instance, located.size),
            )
        else:
            yield PENDING, chosen.dataset


def _ahead(items: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
    """`items`, each stored file told which one follows it (`StoredFile.then`), whose File
    Meta is read before its turn: its request goes on the wire as soon as the response to
    the one before has come, and the peer stores it while pynetdicom answers the
    requestor and asks for the next."""
    current = next(items, None)
    while current is not None:
        following = next(items, None)
        if following is not None:
            this, that = current[1], following[1]
            if isinstance(this, StoredFile) and isinstance(that, StoredFile) and that.readable():
                this.then(that)
        yield current
        current = following


@dataclass
class _Found:
    """What a retrieve sends: stored objects, and for a virtual partition those fetched."""

    local: list[Located]
    remote: list[Remote] = field(default_factory=list)

    def pairs(self) -> list[tuple[str, str]]:
        """(SOP Class, transfer syntax) of everything, fetched ones as little endian (in the
        common storage classes where the member did not name theirs)."""
        out = [(m.sop_class, m.transfer_syntax) for m in self.local]
        fetched = {r.sop_class for r in self.remote}
        if "" in fetched:
            fetched = (fetched - {""}) | set(COMMON_STORAGE)
        return out + [(c, ExplicitVRLittleEndian) for c in sorted(fetched)]

    def sent(
        self,
        event: Event,
        objects: Iterable[Located | Missing],
        accepted: dict[str, set[str]],
        service: str,
        counts: list[int],
    ) -> Iterator[tuple[int, Any]]:
        """`_items` of `objects`, each sent while the one before is answered when all are
        stored here (fetched ones arrive when they arrive: none is waited for early)."""
        items = _items(event, objects, accepted, service, counts)
        return items if self.remote else _ahead(items)

    @contextmanager
    def objects(self, archive: Archive, part: Partition) -> Iterator[Iterable[Located | Missing]]:
        """Every object in order: the stored ones, then the fetched ones as they arrive."""
        fetch = Fetch(archive, part, self.remote)
        try:
            yield chain(self.local, fetch)
        finally:
            fetch.close()


def _found(archive: Archive, identifier: Dataset, part: Partition) -> _Found:
    if part.virtual:
        got = sources(archive, identifier, part)
        return _Found(got.local, got.remote)
    return _Found(locate(archive, identifier, partition=part))


def handle_get(event: Event, archive: Archive) -> Iterator[Any]:
    """C-GET: the objects go back over the requesting association."""
    started = time.perf_counter()
    part = called_partition(archive, event)
    with _audited(archive, event, part, "C-GET") as counts:
        try:
            found = _found(archive, event.identifier, part)
        except Exception as exc:
            counts[1] += 1
            yield 0
            yield query_failure("c_get", exc), None
            return
        yield len(found.local) + len(found.remote)
        with found.objects(archive, part) as objects:
            accepted = _accepted(event.assoc, "scu")
            yield from found.sent(event, objects, accepted, "c_get", counts)
    LATENCY.labels("c_get").observe(time.perf_counter() - started)


def move_contexts(pairs: list[tuple[str, str]]) -> list[PresentationContext]:
    """The C-MOVE sub-association's contexts: each stored (SOP class, syntax) pair on its own,
    so that the destination takes every object as stored, and a little endian fallback per
    SOP class (see `dicomnet.contexts`)."""
    return storage_contexts(pairs, fit=True)


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
        act_as_caller(event)
        record(
            archive.engine,
            "retrieve",
            outcome=MINOR_FAILURE,
            partition=called_partition(archive, event).ae_title,
            detail=f"C-MOVE to unknown destination {destination!r} refused",
        )
        yield None, None  # pynetdicom answers 0xA801 Move Destination unknown
        return
    partition = called_partition(archive, event)
    holder: dict[str, Association] = {}
    found = _Found([])

    def _open() -> Association:
        contexts = move_contexts(found.pairs()) or query_contexts([VERIFICATION])
        link = associate(peer_of(device), archive.settings, contexts, calling_ae=partition.ae_title)
        holder["assoc"] = link.assoc
        return link.assoc

    yield device.host, device.port, {"opener": _open}
    with _audited(archive, event, partition, f"C-MOVE to {destination}") as counts:
        try:
            found = _found(archive, event.identifier, partition)
        except Exception as exc:
            counts[1] += 1
            query_failure("c_move", exc)  # logged and counted; pynetdicom answers 0xC513
            raise
        yield len(found.local) + len(found.remote)
        accepted = _accepted(holder["assoc"], "scu") if "assoc" in holder else {}
        with found.objects(archive, partition) as objects:
            yield from found.sent(event, objects, accepted, "c_move", counts)
    LATENCY.labels("c_move").observe(time.perf_counter() - started)
