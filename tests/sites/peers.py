"""Destinations for the forwarding tests: a pynetdicom storage (and commitment) SCP that counts
what it receives, and a second Hounsfield node."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import StorageCommitmentPushModel, Verification

from hounsfield.archive.context import Archive
from hounsfield.dimse.server import DimseServer
from tests.conftest import make_archive, make_settings
from tests.dcmtk import free_port


@dataclass
class Received:
    """What a test destination saw."""

    stores: Counter[str] = field(default_factory=Counter)  # SOP Instance UID -> times
    syntaxes: dict[str, str] = field(default_factory=dict)
    callers: list[str] = field(default_factory=list)
    associations: int = 0
    most_at_once: int = 0
    commitments: list[list[str]] = field(default_factory=list)
    _open: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class StoreCommitSCP:
    """A storage SCP that also commits (reporting on the same association); `refuse` decides
    per SOP Instance UID and request number whether a commitment fails; `transfer_syntaxes`
    limits what it accepts; `on_store` is called with the number of stores received so far
    before each is answered (it may hold the answer)."""

    def __init__(
        self,
        ae_title: str = "DEST",
        *,
        refuse: Callable[[str, int], bool] = lambda uid, n: False,
        transfer_syntaxes: list[str] | None = None,
        port: int | None = None,
        on_store: Callable[[int], None] | None = None,
    ) -> None:
        self.ae_title, self.refuse, self.on_store = ae_title, refuse, on_store
        self.port = port or free_port()
        self.seen = Received()
        ae = AE(ae_title=ae_title)
        for cx in AllStoragePresentationContexts:
            if transfer_syntaxes:
                ae.add_supported_context(cx.abstract_syntax, transfer_syntaxes)
            else:
                ae.add_supported_context(cx.abstract_syntax)
        ae.add_supported_context(Verification)
        ae.add_supported_context(StorageCommitmentPushModel)
        ae.maximum_associations = 16
        self.ae = ae
        self.server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[
                (evt.EVT_C_STORE, self._store),
                (evt.EVT_N_ACTION, self._commit),
                (evt.EVT_ACCEPTED, self._opened),
                (evt.EVT_RELEASED, self._closed),
                (evt.EVT_ABORTED, self._closed),
            ],
        )

    def _opened(self, event: Any) -> None:
        with self.seen.lock:
            self.seen.associations += 1
            self.seen._open += 1
            self.seen.most_at_once = max(self.seen.most_at_once, self.seen._open)
            self.seen.callers.append(str(event.assoc.requestor.ae_title).strip())

    def _closed(self, _event: Any) -> None:
        with self.seen.lock:
            self.seen._open -= 1

    def _store(self, event: Any) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        with self.seen.lock:
            self.seen.stores[uid] += 1
            self.seen.syntaxes[uid] = str(event.context.transfer_syntax)
            received = sum(self.seen.stores.values())
        if self.on_store is not None:
            self.on_store(received)
        return 0x0000

    def _commit(self, event: Any) -> tuple[int, None]:
        info = event.action_information
        refs = [
            (str(r.ReferencedSOPClassUID), str(r.ReferencedSOPInstanceUID))
            for r in info.ReferencedSOPSequence
        ]
        with self.seen.lock:
            self.seen.commitments.append([iuid for _c, iuid in refs])
            attempt = len(self.seen.commitments)
        report = Dataset()
        report.TransactionUID = info.TransactionUID
        kept, failed = [], []
        for cuid, iuid in refs:
            ref = Dataset()
            ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = cuid, iuid
            bad = self.refuse(iuid, attempt) or self.seen.stores[iuid] == 0
            if bad:
                ref.FailureReason = 0x0112
            (failed if bad else kept).append(ref)
        if kept:
            report.ReferencedSOPSequence = kept
        if failed:
            report.FailedSOPSequence = failed
        assoc = event.assoc

        def _report() -> None:
            assoc.send_n_event_report(
                report, 2 if failed else 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1"
            )

        threading.Timer(0.2, _report).start()
        return 0x0000, None

    def stop(self) -> None:
        """Stop listening."""
        self.server.shutdown()


def second_node(tmp_path: Path, ae_title: str = "HQ") -> tuple[Archive, DimseServer]:
    """Another Hounsfield node (its own SQLite index and storage) serving DIMSE."""
    settings = make_settings(tmp_path / ae_title.lower(), None, ae_title=ae_title)  # type: ignore[arg-type]
    archive = make_archive(settings)
    server = DimseServer(archive)
    server.start()
    return archive, server
