"""`Client`: C-ECHO, C-STORE, C-FIND, C-GET and C-MOVE to the nodes of a cluster, with failover."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.presentation import PresentationContext

from hounsfield.client import files, retrieving, sending
from hounsfield.client.failover import with_failover
from hounsfield.client.files import Part10
from hounsfield.client.nodes import DEFAULT_QUARANTINE, NodeRing, parse_nodes
from hounsfield.client.query import identifier
from hounsfield.client.received import Folder
from hounsfield.client.reports import RetrieveReport, SendReport
from hounsfield.dicomnet.contexts import query_contexts
from hounsfield.dicomnet.install import install
from hounsfield.dicomnet.peer import Address, Peer, format_address
from hounsfield.dicomnet.scu import FIND, GET, MOVE, VERIFICATION, PeerAssociation, associate
from hounsfield.errors import PeerError
from hounsfield.settings import Settings

Sendable = Path | str | Dataset
OnSent = Callable[[Part10, str | None], object]
"""Told each instance once its fate is known: the node that took it, or None."""


class Client:
    """A DICOM client of a cluster: every node's address, one called AE title.

    Each new association goes to the next live node in turn (or, with `affinity`, a send's
    study to the node its Study Instance UID hashes to). A node that refuses the
    connection, rejects or aborts the association, or does not answer in time is left for
    `quarantine` seconds and the request goes on at the next node: a send from its first
    unacknowledged instance, a query or retrieve from the start.

    `connect_timeout` bounds the TCP connect, `association_timeout` the association
    request, `receive_timeout` each DIMSE response. Creating a client installs the SCU
    layer's fast paths in the process (`hounsfield.dicomnet.install`).
    """

    def __init__(
        self,
        nodes: str | Sequence[str],
        *,
        called_ae: str = "HOUNSFIELD",
        calling_ae: str = "HFCLIENT",
        connect_timeout: float = 2.0,
        association_timeout: float = 10.0,
        receive_timeout: float = 60.0,
        quarantine: float = DEFAULT_QUARANTINE,
        affinity: bool = False,
        rounds: int = 1,
        settings: Settings | None = None,
    ) -> None:
        install()
        self.ring = NodeRing(parse_nodes(nodes), quarantine)
        self.called_ae, self.affinity, self.rounds = called_ae, affinity, max(1, rounds)
        self.timeouts = (connect_timeout, association_timeout, receive_timeout)
        base = settings if settings is not None else Settings.model_construct()
        self.settings = base.model_copy(update={"ae_title": calling_ae})
        self.failovers = 0
        self._lock = threading.Lock()

    @property
    def nodes(self) -> list[str]:
        """The nodes, as host:port."""
        return [format_address(n) for n in self.ring.nodes]

    def peer(self, node: Address) -> Peer:
        """The called AE at one node, with this client's timeouts."""
        connect, association, receive = self.timeouts
        return Peer(self.called_ae, node[0], node[1], connect, association, receive)

    def associate(
        self, node: Address, contexts: Sequence[PresentationContext], ext_neg: Sequence[Any] = ()
    ) -> PeerAssociation:
        """An association to one node (no failover), or a PeerError."""
        return associate(self.peer(node), self.settings, contexts, ext_neg=ext_neg)

    def _failed_over(self, _node: Address, _exc: PeerError) -> None:
        with self._lock:
            self.failovers += 1

    def echo(self) -> tuple[str, int]:
        """C-ECHO at the first node that answers: that node and its status."""

        def at(node: Address) -> tuple[str, int]:
            with self.associate(node, query_contexts([VERIFICATION])) as link:
                return format_address(node), link.echo()

        return with_failover(self.ring, at, on_failover=self._failed_over)

    def send(
        self,
        objects: Iterable[Sendable],
        *,
        affinity: bool | None = None,
        associations: int = 1,
        on_sent: OnSent | None = None,
    ) -> SendReport:
        """C-STORE files (folders: every file under them) and datasets, each file as it is.
        `associations` sends consecutive shares at once (with affinity: studies at once).
        A file that is not DICOM is reported failed; the others go on."""
        report = SendReport()
        with tempfile.TemporaryDirectory(prefix="hf-send-") as scratch:
            items = self._items(objects, Path(scratch), report)
            self._send(items, report, affinity, associations, on_sent)
        with self._lock:
            self.failovers += report.failovers
        return report

    def _items(
        self, objects: Iterable[Sendable], scratch: Path, report: SendReport
    ) -> list[Part10]:
        items: list[Part10] = []
        paths: list[Path | str] = []
        for n, obj in enumerate(objects):
            if isinstance(obj, Dataset):
                paths.append(files.write(obj, scratch / f"{n}.dcm"))
            else:
                paths.append(obj)
        for path in files.walk(paths):
            try:
                items.append(files.read(path))
            except ValueError as exc:
                report.not_sent(str(path), str(exc))
        return items

    def _send(
        self,
        items: list[Part10],
        report: SendReport,
        affinity: bool | None,
        associations: int,
        on_sent: OnSent | None,
    ) -> None:
        sticky = self.affinity if affinity is None else affinity
        units = sending.units(items, affinity=sticky, associations=associations)
        lock = threading.Lock()

        def done(item: Part10, node: str | None) -> None:
            if on_sent is not None:
                with lock:
                    on_sent(item, node)

        def run(unit: sending.Unit) -> None:
            sending.send_unit(unit, self.ring, self.associate, report, done, self.rounds)

        with ThreadPoolExecutor(max(1, associations), thread_name_prefix="hf-send") as pool:
            for finished in [pool.submit(run, unit) for unit in units]:
                finished.result()

    def find(
        self,
        query: Dataset | Mapping[str, object] | None = None,
        level: str = "STUDY",
        *,
        model: str = FIND,
    ) -> list[Dataset]:
        """C-FIND at `level` (STUDY, SERIES, IMAGE; PATIENT with a patient root `model`)."""
        ask = identifier(query, level)
        return retrieving.find(self.ring, self.associate, ask, model, self._failed_over)

    def move(
        self,
        query: Dataset | Mapping[str, object],
        destination_ae: str,
        level: str = "STUDY",
        *,
        model: str = MOVE,
        on_progress: retrieving.OnProgress | None = None,
    ) -> RetrieveReport:
        """C-MOVE what `query` matches to `destination_ae` (a node asked again after a
        failover sends again what it had sent)."""
        ask = identifier(query, level)
        return retrieving.move(
            self.ring, self.associate, ask, destination_ae, model, self._failed_over, on_progress
        )

    def get(
        self,
        query: Dataset | Mapping[str, object],
        dest_dir: Path | str,
        level: str = "STUDY",
        *,
        sop_classes: Sequence[str] | None = None,
        model: str = GET,
        on_progress: retrieving.OnProgress | None = None,
    ) -> RetrieveReport:
        """C-GET what `query` matches into `dest_dir`, one file per SOP Instance UID. The SOP
        classes to take back are asked first by C-FIND when not given."""
        ask = identifier(query, level)
        if sop_classes is None:
            sop_classes = self._classes(ask)
        folder = Folder(Path(dest_dir))
        return retrieving.get(
            self.ring,
            self.associate,
            ask,
            folder,
            sop_classes,
            model,
            self._failed_over,
            on_progress,
        )

    def _classes(self, ask: Dataset) -> list[str]:
        """The SOP classes of what a retrieve asks for, as the cluster tells them."""
        level = str(ask.QueryRetrieveLevel)
        probe = ask.copy()
        if level == "IMAGE":
            probe.SOPClassUID = probe.get("SOPClassUID", "")
        else:
            probe.SOPClassesInStudy = ""
        try:
            found = self.find(probe, level)
        except PeerError:
            return []
        return retrieving.classes_in(found)
