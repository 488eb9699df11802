"""The DIMSE server: one pynetdicom AE with every service bound to the archive."""

from __future__ import annotations

import logging
import socket
import threading
import time
from functools import partial
from typing import Any

import pydicom.config as pydicom_config
from pynetdicom import AE, _config, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from hounsfield.archive.context import Archive
from hounsfield.dimse.commitment import handle_action
from hounsfield.dimse.find import handle_find
from hounsfield.dimse.handoff import DispatchingServer, HandedServer, LoadBoard
from hounsfield.dimse.nodelay import set_nodelay
from hounsfield.dimse.processes import DimseProcesses
from hounsfield.dimse.retrieve import handle_get, handle_move
from hounsfield.dimse.store import handle_store
from hounsfield.metrics import ACTIVE_ASSOCIATIONS, ASSOCIATIONS
from hounsfield.sites.devices import list_devices

log = logging.getLogger(__name__)

_config.LOG_REQUEST_IDENTIFIERS = False
# pydicom checks every value it reads or sets against its VR with regular expressions; for
# a server that validates what it relies on itself (UIDs) this doubled the cost of each DIMSE
# message (pynetdicom builds every command set with pydicom). Measured in bench/RESULTS.md.
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE

# Every storage SOP class, private and retired ones included, is accepted with the first
# transfer syntax the requestor proposes, as it prefers; and the C-GET requestor gets the
# syntax it prefers for what it receives. It also keeps the per-association copy of the
# supported contexts tiny, which matters for association set-up time.
_config.UNRESTRICTED_STORAGE_SERVICE = True

QUERY_RETRIEVE = (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)


def build_ae(archive: Archive, max_associations: int | None = None) -> AE:
    """An AE supporting verification, storage, query/retrieve and storage commitment."""
    s = archive.settings
    ae = AE(ae_title=s.ae_title)
    ae.maximum_pdu_size = s.max_pdu
    ae.maximum_associations = max_associations or s.max_associations
    ae.connection_timeout = s.connect_timeout
    ae.acse_timeout = s.association_timeout
    ae.dimse_timeout = s.dimse_timeout
    ae.network_timeout = s.idle_timeout
    ae.add_supported_context(Verification)
    for uid in QUERY_RETRIEVE:
        ae.add_supported_context(uid)
    ae.add_supported_context(StorageCommitmentPushModel)
    return ae


def allow_list(titles: list[str]) -> list[str]:
    """pynetdicom's allow-list; never empty, since an empty list lets anyone in."""
    return titles or [NOBODY]


NOBODY = "<no device>"


class CallerPolicy:
    """Keeps the AE's calling-AE allow-list in step with the device table."""

    def __init__(self, archive: Archive, ae: AE, refresh_seconds: float = 1.0) -> None:
        self.archive, self.ae, self.refresh = archive, ae, refresh_seconds
        self._loaded = 0.0
        self._lock = threading.Lock()

    def on_connect(self, _event: Event) -> None:
        """EVT_CONN_OPEN: refresh the allow-list if due."""
        if self.archive.settings.caller_policy != "known":
            return
        with self._lock:
            if time.monotonic() - self._loaded > self.refresh:
                try:
                    titles = [d.ae_title for d in list_devices(self.archive)]
                except Exception as exc:
                    log.error("cannot refresh known devices: %s", exc)
                    return
                self.ae.require_calling_aet = allow_list(titles)
                self._loaded = time.monotonic()


class DimseServer:
    """The running DIMSE listener (or, in an extra DIMSE process, the connections handed to
    it) and a clean way to stop it."""

    def __init__(self, archive: Archive, board: LoadBoard | None = None, index: int = 0) -> None:
        self.archive = archive
        self.board, self.index = board, index
        self.ae = build_ae(archive, board.shares[index] if board else None)
        self.policy = CallerPolicy(archive, self.ae)
        self.server: ThreadedAssociationServer | None = None

    def _count(self, what: str) -> None:
        ASSOCIATIONS.labels(what, str(self.index)).inc()

    def _on_open(self, event: Event) -> None:
        set_nodelay(event)
        self._count("opened")
        ACTIVE_ASSOCIATIONS.inc()
        self.policy.on_connect(event)

    def _on_close(self, _event: Event) -> None:
        ACTIVE_ASSOCIATIONS.dec()
        self._count("closed")
        if self.board is not None:
            self.board.add(self.index, -1)

    def _on_rejected(self, event: Event) -> None:
        self._count("rejected")
        log.warning("association from %r rejected", event.assoc.requestor.ae_title)

    def handlers(self) -> list[Any]:
        """The event handlers bound to the listener."""
        a = self.archive
        return [
            (evt.EVT_CONN_OPEN, self._on_open),
            (evt.EVT_CONN_CLOSE, self._on_close),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_C_STORE, partial(handle_store, archive=a)),
            (evt.EVT_C_FIND, partial(handle_find, archive=a)),
            (evt.EVT_C_GET, partial(handle_get, archive=a)),
            (evt.EVT_C_MOVE, partial(handle_move, archive=a)),
            (evt.EVT_N_ACTION, partial(handle_action, archive=a)),
        ]

    def _load_policy(self) -> None:
        if self.archive.settings.caller_policy == "known":
            self.ae.require_calling_aet = allow_list(
                [d.ae_title for d in list_devices(self.archive)]
            )

    def start(self, processes: DimseProcesses | None = None) -> None:
        """Listen on the configured address without blocking; with `processes`, hand new
        connections to the least busy DIMSE process."""
        s = self.archive.settings
        self._load_policy()
        server = self.ae.make_server(
            (s.host, s.dimse_port),
            evt_handlers=self.handlers(),
            server_class=DispatchingServer,
        )
        if processes is not None:
            server.dispatch = processes.dispatch
        threading.Thread(target=server.serve_forever, name="dimse-listener", daemon=True).start()
        self.ae._servers.append(server)
        self.server = server
        log.info("DICOM listening on %s:%d as %s", s.host, s.dimse_port, s.ae_title)

    def start_handed(self) -> None:
        """Serve connections the listener hands over (`take`); listen on nothing."""
        s = self.archive.settings
        self._load_policy()
        self.server = self.ae.make_server(
            (s.host, s.dimse_port), evt_handlers=self.handlers(), server_class=HandedServer
        )

    def take(self, sock: socket.socket, client_address: Any) -> None:
        """Serve one connection accepted by the listener."""
        assert isinstance(self.server, HandedServer)
        self.server.take(sock, client_address)

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        assert self.server is not None
        return int(self.server.server_address[1])

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop listening, let running associations finish, then abort the rest."""
        if self.server is None:
            return
        server, self.server = self.server, None
        if isinstance(server, HandedServer):
            server.close()
        else:
            server.shutdown()
        deadline = time.monotonic() + grace_seconds
        while server.active_associations and time.monotonic() < deadline:
            time.sleep(0.05)
        for assoc in server.active_associations:
            assoc.abort()
        log.info("DICOM listener stopped")
