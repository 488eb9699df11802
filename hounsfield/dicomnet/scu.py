"""The one way out: associations this node opens to peers, and what it asks of them.

    with associate(peer, settings, storage_contexts(pairs)) as link:
        status = link.store(located, convert=to_little_endian)  # from imaging.transcode

C-STOREs send stored files as they are on disk (`rawsend` must be installed: the node's
bootstrap does it); an object whose stored syntax the peer refused is decoded (little endian
syntaxes here; anything else by the caller's `convert`) and sent in a little endian one.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from hounsfield.dicomnet import connect, rawsend, storesend
from hounsfield.dicomnet.contexts import LITTLE_ENDIAN
from hounsfield.dicomnet.incoming import StoreHandler, refuse_store, store_handler
from hounsfield.dicomnet.peer import Peer, Timeouts
from hounsfield.dicomnet.responses import FindStream, RetrieveStream
from hounsfield.errors import (
    AssociationAborted,
    AssociationRejected,
    ContextNotAccepted,
    PeerError,
    PeerTimeout,
    PeerUnreachable,
    ServiceNotOffered,
)
from hounsfield.settings import Settings

log = logging.getLogger(__name__)

FIND = str(StudyRootQueryRetrieveInformationModelFind)
MOVE = str(StudyRootQueryRetrieveInformationModelMove)
GET = str(StudyRootQueryRetrieveInformationModelGet)
VERIFICATION = str(Verification)
COMMITMENT = str(StorageCommitmentPushModel)
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"  # the well-known SOP Instance
TRANSIENT = 2  # A-ASSOCIATE-RJ result: rejected, transient

Converter = Callable[[Path], Dataset]
"""Decodes a stored file into an uncompressed little endian dataset."""


class Stored(Protocol):
    """A stored object to send (the archive's `Located` is one)."""

    @property
    def path(self) -> Path: ...
    @property
    def sop_class(self) -> str: ...
    @property
    def sop_instance(self) -> str: ...
    @property
    def transfer_syntax(self) -> str: ...


class PeerAssociation:
    """An established association to a peer. As a context manager it releases at the end
    (cancelling an unfinished request first), or aborts when the block raised."""

    def __init__(self, assoc: Association, peer: Peer, timeouts: Timeouts) -> None:
        self.assoc, self.peer, self.timeouts = assoc, peer, timeouts
        self._ids = itertools.cycle(range(1, 0x10000))  # Message ID is 16 bits
        self._open: FindStream | RetrieveStream | None = None
        self._reports = threading.Event()
        self._ahead: rawsend.StoredFile | None = None  # a C-STORE request sent ahead

    def __enter__(self) -> PeerAssociation:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None or issubclass(kind, GeneratorExit):  # a generator closed early
            self.release()
        else:
            self.abort()

    def release(self) -> None:
        """Finish (cancel) an unfinished request, then release the association."""
        self._settle()
        if self._open is not None and not self._open.finished and self.assoc.is_established:
            try:
                self._open.cancel()
            except PeerError as exc:
                log.warning("%s: %s", self.peer, exc)
        if self.assoc.is_established:
            self.assoc.release()

    def abort(self) -> None:
        """Abort the association (A-ABORT) if it is still up."""
        if self.assoc.is_established:
            self.assoc.abort()

    def accepted(self, sop_class: str) -> set[str]:
        """The transfer syntaxes the peer accepted for sending it `sop_class`."""
        return {
            str(cx.transfer_syntax[0])
            for cx in self.assoc.accepted_contexts
            if cx.abstract_syntax == sop_class and cx.as_scu
        }

    def failure(self, doing: str) -> PeerError:
        """The error for a request that got no (valid) final response."""
        if connect.timed_out(self.assoc):
            return PeerTimeout(
                f"{self.peer}: no {doing} response within {self.timeouts.dimse:g} s", "DIMSE"
            )
        return AssociationAborted(f"{self.peer}: association ended during {doing}")

    def send_cancel(self, msg_id: int, model: str) -> None:
        """Send a C-CANCEL for the request `msg_id`."""
        if not self.assoc.is_established:
            raise AssociationAborted(f"{self.peer}: association no longer open for C-CANCEL")
        self.assoc.send_c_cancel(msg_id, query_model=model)

    def _settle(self, keep: Stored | None = None) -> rawsend.StoredFile | None:
        """The C-STORE request sent ahead when it is `keep`'s (its response is still to be
        read); another one's response is read now, and its status is lost."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        if keep is not None and (ahead.stored_path, ahead.SOPInstanceUID) == (
            keep.path,
            keep.sop_instance,
        ):
            return ahead
        if storesend.in_flight(self.assoc) is ahead and self.assoc.is_established:
            storesend.read_response(self.assoc)
        return None

    def _ready(self, doing: str, model: str | None = None) -> int:
        self._settle()
        if self._open is not None and not self._open.finished:
            self._open.cancel()
        if not self.assoc.is_established:
            raise AssociationAborted(f"{self.peer}: association no longer open for {doing}")
        if model is not None and not any(
            cx.abstract_syntax == model and cx.as_scu for cx in self.assoc.accepted_contexts
        ):
            raise ServiceNotOffered(f"{self.peer} does not offer {doing} ({model})")
        return next(self._ids)

    def echo(self) -> int:
        """C-ECHO; the peer's status."""
        status = self.assoc.send_c_echo(msg_id=self._ready("C-ECHO"))
        if "Status" not in status:
            raise self.failure("C-ECHO")
        return int(status.Status)

    def event_report(
        self, info: Dataset, event_type: int, sop_class: str, sop_instance: str
    ) -> int:
        """N-EVENT-REPORT (as the SCP of `sop_class`, e.g. a storage commitment result); the
        peer's status."""
        status, _ = self.assoc.send_n_event_report(
            info, event_type, sop_class, sop_instance, msg_id=self._ready("N-EVENT-REPORT")
        )
        if "Status" not in status:
            raise self.failure("N-EVENT-REPORT")
        return int(status.Status)

    def commit(self, transaction: str, refs: Sequence[tuple[str, str]]) -> int:
        """Request Storage Commitment (N-ACTION) of the (SOP Class, SOP Instance) pairs
        `refs` under `transaction`; the peer's status. The association must have been opened
        with a Storage Commitment Push Model context; the result comes in an N-EVENT-REPORT
        (see `on_event_report`), here or on an association the peer opens."""
        info = Dataset()
        info.TransactionUID = transaction
        info.ReferencedSOPSequence = []
        for cuid, iuid in refs:
            ref = Dataset()
            ref.ReferencedSOPClassUID = cuid
            ref.ReferencedSOPInstanceUID = iuid
            info.ReferencedSOPSequence.append(ref)
        status, _ = self.assoc.send_n_action(
            info, 1, COMMITMENT, COMMITMENT_INSTANCE, msg_id=self._ready("N-ACTION")
        )
        if "Status" not in status:
            raise self.failure("N-ACTION")
        return int(status.Status)

    def on_event_report(self, callback: Callable[[int, Dataset], int]) -> None:
        """Answer the N-EVENT-REPORTs the peer sends on this association with
        `callback(event type, event information) -> status`."""

        def handle(event: evt.Event) -> tuple[int, None]:
            try:
                return callback(int(event.event_type), event.event_information), None
            finally:
                self._reports.set()

        self._reports.clear()
        self.assoc.bind(evt.EVT_N_EVENT_REPORT, handle)

    def wait_for_event_report(self, seconds: float) -> bool:
        """Wait until an N-EVENT-REPORT arrived on this association (True), the association
        ended or `seconds` passed (False)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._reports.wait(min(left, connect.SLICE * 4)):
                return True
            if not self.assoc.is_established:
                return False
        return False

    def find(self, query: Dataset, model: str = FIND) -> FindStream:
        """C-FIND; the matches as they arrive. Closing the stream (or leaving its `with`
        block, or starting another request) before the end sends C-CANCEL."""
        msg_id = self._ready("C-FIND", model)
        stream = FindStream(
            self, self.assoc.send_c_find(query, model, msg_id=msg_id), msg_id, model
        )
        self._open = stream
        return stream

    def move(self, query: Dataset, destination: str, model: str = MOVE) -> RetrieveStream:
        """C-MOVE to `destination`; its progress, then `result` (see RetrieveStream)."""
        msg_id = self._ready("C-MOVE", model)
        responses = self.assoc.send_c_move(query, destination, model, msg_id=msg_id)
        stream = RetrieveStream(self, responses, msg_id, model, doing="C-MOVE")
        self._open = stream
        return stream

    def get(self, query: Dataset, on_store: StoreHandler, model: str = GET) -> RetrieveStream:
        """C-GET; each object that comes back goes to `on_store` while the stream is read.
        The association must have been opened with `contexts.get_contexts`' contexts and
        role selections."""
        msg_id = self._ready("C-GET", model)
        handler = store_handler(on_store)
        self.assoc.bind(evt.EVT_C_STORE, handler)  # replaces the previous one
        responses = self.assoc.send_c_get(query, model, msg_id=msg_id)
        stream = RetrieveStream(self, responses, msg_id, model, doing="C-GET")
        self._open = stream
        return stream

    def store(
        self, obj: Stored, *, convert: Converter | None = None, following: Stored | None = None
    ) -> int:
        """C-STORE of a stored object; the peer's status. Sent from its file when the peer
        accepted its stored syntax; otherwise decoded and sent in a little endian syntax
        (`convert` decodes what is not little endian; ContextNotAccepted without it).

        `following`, the object the caller stores next, goes on the wire as soon as the peer
        has answered this one (when it too is sent from its file), and the peer stores it
        while the caller books this one; then `store(following)` only reads its response."""
        ahead = self._settle(obj)
        msg_id = self._ready("C-STORE")
        accepted = self.accepted(obj.sop_class)
        if obj.transfer_syntax in accepted:
            if not getattr(Association.send_c_store, "_sends_stored_files", False):
                raise RuntimeError("hounsfield.dicomnet.install.install() was not called")
            stored = (
                ahead
                if ahead is not None
                else rawsend.StoredFile(obj.path, obj.sop_class, obj.sop_instance)
            )
            if following is not None and following.transfer_syntax in self.accepted(
                following.sop_class
            ):
                after = rawsend.StoredFile(
                    following.path, following.sop_class, following.sop_instance
                )
                if after.readable():
                    stored.then(after)
                    self._ahead = after
            status = self.assoc.send_c_store(stored, msg_id=msg_id)
        else:
            payload = self._converted(obj, accepted, convert)
            status = self.assoc.send_c_store(payload, msg_id=msg_id)
        if "Status" not in status:
            raise self.failure("C-STORE")
        return int(status.Status)

    def _converted(self, obj: Stored, accepted: set[str], convert: Converter | None) -> Dataset:
        if not accepted & set(LITTLE_ENDIAN):
            raise ContextNotAccepted(
                f"{self.peer} accepts {', '.join(sorted(accepted)) or 'nothing'} for "
                f"{obj.sop_class}; {obj.sop_instance} is stored as {obj.transfer_syntax}"
            )
        if obj.transfer_syntax in LITTLE_ENDIAN:
            return dcmread(obj.path)  # pynetdicom re-encodes between the two
        if convert is None:
            raise ContextNotAccepted(
                f"{self.peer} does not accept {obj.transfer_syntax} for {obj.sop_class} "
                f"and no converter was given for {obj.sop_instance}"
            )
        return convert(obj.path)


def associate(
    peer: Peer,
    settings: Settings,
    contexts: Sequence[PresentationContext],
    *,
    ext_neg: Sequence[Any] = (),
    calling_ae: str | None = None,
) -> PeerAssociation:
    """An established association to `peer` (our AE title — or a partition's, `calling_ae` —
    PDU size and timeouts from `settings`, the peer's own timeouts first), or a PeerError
    saying why not.

    A peer with alternates is asked at its main address, then at each alternate while the
    last one was unreachable, timed out, closed the connection or rejected the association
    transiently; the association's `peer` is then the address that answered. When every
    address failed, the last one's error is raised."""
    addresses = peer.addresses()
    for n, address in enumerate(addresses):
        target = peer if len(addresses) == 1 else peer.at(address)
        try:
            assoc, timeouts = connect.request(
                target,
                settings,
                contexts,
                ext_neg=ext_neg,
                handlers=[(evt.EVT_C_STORE, refuse_store)],
                calling_ae=calling_ae,
            )
        except PeerError as exc:
            if n + 1 == len(addresses) or not worth_another_address(exc):
                raise
            log.warning("%s; trying %s at the next address", exc.message, peer.ae_title)
            continue
        return PeerAssociation(assoc, target, timeouts)
    raise AssertionError("a peer has at least one address")  # pragma: no cover


def worth_another_address(exc: PeerError) -> bool:
    """Whether an association request that failed this way may succeed at another address
    of the same AE: no connection, no answer in time, a closed connection, or a transient
    rejection."""
    if isinstance(exc, AssociationRejected):
        return exc.result == TRANSIENT
    return isinstance(exc, PeerUnreachable | PeerTimeout | AssociationAborted)
