"""The DIMSE server: one pynetdicom AE with every service bound to the archive."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.association import Association
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
from hounsfield.audit.events import MINOR_FAILURE, Actor
from hounsfield.audit.trail import record
from hounsfield.catalog.partitions import Partition
from hounsfield.dicomnet.admission import (
    CALLED_AE_NOT_RECOGNISED,
    CALLING_AE_NOT_RECOGNISED,
    TEMPORARY_CONGESTION,
    Rejection,
    set_admission,
)
from hounsfield.dicomnet.handoff import DispatchingServer, HandedServer, LoadBoard
from hounsfield.dicomnet.nodelay import set_nodelay
from hounsfield.dicomnet.proxyproto import balancers
from hounsfield.dicomnet.serving import ServingAE
from hounsfield.dicomnet.tls import TlsHandedServer, TlsListener, server_context
from hounsfield.dimse.audit import caller
from hounsfield.dimse.commitment import handle_action, handle_event_report
from hounsfield.dimse.find import handle_find
from hounsfield.dimse.partition import called_partition, set_partition
from hounsfield.dimse.retrieve import handle_get, handle_move
from hounsfield.dimse.store import handle_store
from hounsfield.metrics import ACTIVE_ASSOCIATIONS, ASSOCIATIONS
from hounsfield.sites.devices import list_devices

log = logging.getLogger(__name__)
_REFUSAL_RECORDED = "_hounsfield_refusal_recorded"

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
    ae = ServingAE(ae_title=s.ae_title)
    ae.maximum_pdu_size = s.max_pdu
    ae.maximum_associations = max_associations or s.max_associations
    ae.connection_timeout = s.connect_timeout
    ae.acse_timeout = s.association_timeout
    ae.dimse_timeout = s.dimse_timeout
    ae.network_timeout = s.idle_timeout
    ae.add_supported_context(Verification)
    for uid in QUERY_RETRIEVE:
        ae.add_supported_context(uid)
    # As SCP for modalities, and as SCU for the reports of destinations this node forwards
    # to with storage commitment (they open an association in the SCP role to report).
    ae.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
    return ae


class Admission:
    """Who may associate with which partition: the called AE title names the partition (on a
    partition's own port, only that partition answers); its caller policy and allow-list
    decide about the caller. The partition found is kept on the association. A draining
    node refuses every new association as transient congestion: the caller (or the load
    balancer's check) turns to another node."""

    def __init__(
        self,
        archive: Archive,
        refresh_seconds: float = 1.0,
        draining: Callable[[], bool] | None = None,
    ) -> None:
        self.archive, self.refresh, self.draining = archive, refresh_seconds, draining
        self._known: set[str] = set()
        self._loaded = -1e9
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Read the known devices again on next use (the configuration changed)."""
        with self._lock:
            self._loaded = -1e9

    def known_devices(self) -> set[str]:
        """The AE titles of known devices, re-read at most once per `refresh` seconds."""
        with self._lock:
            if time.monotonic() - self._loaded > self.refresh:
                try:
                    self._known = {d.ae_title for d in list_devices(self.archive)}
                    self._loaded = time.monotonic()
                except Exception as exc:
                    log.error("cannot refresh known devices: %s", exc)
            return self._known

    def __call__(
        self, assoc: Association, calling: str, called: str, host: str, port: int
    ) -> Rejection | None:
        actor = caller(assoc, calling, host, called)
        if self.draining is not None and self.draining():
            log.info("association from %r refused: this node is draining", calling)
            return self._refused(assoc, actor, TEMPORARY_CONGESTION, "this node is draining")
        part = self.partition_for(called, port)
        if part is None:
            log.warning("association from %r to unknown AE title %r refused", calling, called)
            why = f"called AE title {called!r} unknown"
            return self._refused(assoc, actor, CALLED_AE_NOT_RECOGNISED, why)
        if part.caller_policy == "known" and calling not in self.known_devices():
            log.warning("association from unknown AE %r to %s refused", calling, part.ae_title)
            why = f"calling AE title {calling!r} is not a known device"
            return self._refused(assoc, actor, CALLING_AE_NOT_RECOGNISED, why, part.ae_title)
        if not part.accepts(calling, host):
            log.warning("association from %r@%s to %s refused", calling, host, part.ae_title)
            why = f"{calling!r} from {host} is not on the partition's allow-list"
            return self._refused(assoc, actor, CALLING_AE_NOT_RECOGNISED, why, part.ae_title)
        set_partition(assoc, part)
        return None

    def _refused(
        self,
        assoc: Association,
        actor: Actor,
        rejection: Rejection,
        why: str,
        partition: str = "",
    ) -> Rejection:
        """Record a refusal in the audit trail and give it back."""
        setattr(assoc, _REFUSAL_RECORDED, True)
        engine = self.archive.engine
        record(
            engine,
            "association-refused",
            actor=actor,
            outcome=MINOR_FAILURE,
            partition=partition,
            detail=why,
        )
        return rejection

    def partition_for(self, called: str, port: int) -> Partition | None:
        """The partition an association to `called` on local `port` speaks to, if any."""
        archive = self.archive
        parts = archive.partitions()
        on_port = next((p for p in parts if port and port in (p.port, p.tls_port)), None)
        if on_port is not None:  # a partition's own port answers for that partition only
            if called == on_port.ae_title or archive.settings.unknown_called_ae_to_default:
                return on_port
            return None
        found = next((p for p in parts if p.ae_title == called), None)
        if found is None and archive.settings.unknown_called_ae_to_default:
            found = archive.partition(None)
        return found


class DimseServer:
    """The running DIMSE listener (or, in an extra DIMSE process, the connections handed to
    it) and a clean way to stop it."""

    def __init__(
        self,
        archive: Archive,
        board: LoadBoard | None = None,
        index: int = 0,
        draining: Callable[[], bool] | None = None,
    ) -> None:
        self.archive = archive
        self.board, self.index = board, index
        self.ae = build_ae(archive, board.shares[index] if board else None)
        self.admission = Admission(archive, draining=draining)
        set_admission(self.ae, self.admission)
        self.server: ThreadedAssociationServer | None = None
        self.partition_servers: list[ThreadedAssociationServer] = []
        self.tls_server: TlsListener | None = None

    def _count(self, what: str) -> None:
        ASSOCIATIONS.labels(what, str(self.index)).inc()

    def _on_open(self, event: Event) -> None:
        set_nodelay(event)
        self._count("opened")
        ACTIVE_ASSOCIATIONS.inc()

    def _on_close(self, _event: Event) -> None:
        ACTIVE_ASSOCIATIONS.dec()
        self._count("closed")
        if self.board is not None:
            self.board.add(self.index, -1)

    def _on_accepted(self, event: Event) -> None:
        part = called_partition(self.archive, event)
        record(
            self.archive.engine,
            "association",
            actor=caller(event.assoc),
            coalesce=True,  # a load balancer's check associates every second or two
            count=1,
            partition=part.ae_title,
        )

    def _on_rejected(self, event: Event) -> None:
        self._count("rejected")
        log.warning("association from %r rejected", event.assoc.requestor.ae_title)
        if not getattr(event.assoc, _REFUSAL_RECORDED, False):  # pynetdicom's own refusal
            why = "the association limit is reached, or no presentation context is supported"
            record(
                self.archive.engine,
                "association-refused",
                actor=caller(event.assoc),
                outcome=MINOR_FAILURE,
                detail=why,
            )

    def handlers(self) -> list[Any]:
        """The event handlers bound to the listener."""
        a = self.archive
        return [
            (evt.EVT_CONN_OPEN, self._on_open),
            (evt.EVT_CONN_CLOSE, self._on_close),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_C_STORE, partial(handle_store, archive=a)),
            (evt.EVT_C_FIND, partial(handle_find, archive=a)),
            (evt.EVT_C_GET, partial(handle_get, archive=a)),
            (evt.EVT_C_MOVE, partial(handle_move, archive=a)),
            (evt.EVT_N_ACTION, partial(handle_action, archive=a)),
            (evt.EVT_N_EVENT_REPORT, partial(handle_event_report, archive=a)),
        ]

    def start(self, dispatch: Callable[[socket.socket, Any], bool] | None = None) -> None:
        """Listen on the configured address (and each partition's own port, and the TLS
        port) without blocking; with `processes`, hand new connections to the least busy
        DIMSE process."""
        s = self.archive.settings
        self.server = self._listen(s.dimse_port, "dimse-listener", DispatchingServer, dispatch)
        log.info("DICOM listening on %s:%d as %s", s.host, self.port, s.ae_title)
        for part in self.archive.partitions():
            if part.port is None or part.port == self.port:
                continue
            name = f"dimse-listener-{part.ae_title}"
            own = self._listen(part.port, name, DispatchingServer, dispatch)
            self.partition_servers.append(own)
            log.info("DICOM listening on %s:%d for partition %s", s.host, part.port, part.ae_title)
        own_tls = [p for p in self.archive.partitions() if p.tls_port]
        context = server_context(s) if s.tls_port is not None or own_tls else None
        for part in own_tls:
            name = f"dimse-tls-listener-{part.ae_title}"
            own = self._listen(part.tls_port or 0, name, TlsListener, dispatch)
            self._arm(own, context, None)
            self.partition_servers.append(own)
            log.info(
                "DICOM TLS listening on %s:%d for partition %s",
                s.host,
                part.tls_port,
                part.ae_title,
            )
        if s.tls_port is not None:
            # The DIMSE processes know a TLS connection by its port: not when it is chosen
            # by the OS (0), so such connections stay here.
            tls = self._listen(s.tls_port, "dimse-tls-listener", TlsListener, None)
            if dispatch is not None and s.tls_port:
                tls.dispatch = dispatch
            self._arm(tls, context, None)
            self.tls_server = tls
            checked = "client certificates required" if s.tls_ca_file else "no client check"
            log.info("DICOM TLS listening on %s:%d (%s)", s.host, self.tls_port, checked)

    def _listen(
        self,
        port: int,
        name: str,
        server_class: type[DispatchingServer],
        dispatch: Callable[[socket.socket, Any], bool] | None,
    ) -> Any:
        host = self.archive.settings.host
        server = self.ae.make_server(
            (host, port), evt_handlers=self.handlers(), server_class=server_class
        )
        if dispatch is not None:
            server.dispatch = dispatch
        server.proxied = balancers(self.archive.settings.dimse_proxy_protocol)
        server.query_path = self.archive.settings.dimse_query_path
        server.store_path = self.archive.settings.dimse_store_path
        # Registered before serving starts: the server's shutdown must find it.
        self.ae._servers.append(server)
        threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
        return server

    def _arm(self, server: Any, context: Any, tls_ports: frozenset[int] | None) -> None:
        """Make `server` handshake TLS first (on connections to `tls_ports`, or every one)."""
        server.tls = context
        server.tls_ports = tls_ports
        server.handshake_timeout = self.archive.settings.association_timeout
        server.on_refused = self._handshake_failed

    def _handshake_failed(self, client_address: Any, why: str) -> None:
        self._count("tls-failed")
        if self.board is not None:
            self.board.add(self.index, -1)
        host = str(client_address[0]) if isinstance(client_address, tuple) else ""
        actor = Actor("", "DICOM-TLS", host=host)
        record(
            self.archive.engine,
            "association-refused",
            actor=actor,
            outcome=MINOR_FAILURE,
            detail=why,
        )

    def start_handed(self) -> None:
        """Serve connections the listener hands over (`take`); listen on nothing."""
        s = self.archive.settings
        # The node's TLS port (0: chosen by the OS, its connections stay with the listener)
        # and the partitions' own TLS ports.
        ports = {p.tls_port for p in self.archive.partitions() if p.tls_port}
        if s.tls_port:
            ports.add(s.tls_port)
        self.server = self.ae.make_server(
            (s.host, s.dimse_port),
            evt_handlers=self.handlers(),
            server_class=TlsHandedServer if ports else HandedServer,
        )
        self.server.query_path = s.dimse_query_path
        self.server.store_path = s.dimse_store_path
        if ports:
            self._arm(self.server, server_context(s), frozenset(ports))

    def take(self, sock: socket.socket, client_address: Any) -> None:
        """Serve one connection accepted by the listener."""
        assert isinstance(self.server, HandedServer)
        self.server.take(sock, client_address)

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        assert self.server is not None
        return int(self.server.server_address[1])

    @property
    def tls_port(self) -> int:
        """The bound TLS port."""
        assert self.tls_server is not None
        return int(self.tls_server.server_address[1])

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop listening, let running associations finish, then abort the rest."""
        for own in self.partition_servers:
            own.shutdown()
        self.partition_servers = []
        tls, self.tls_server = self.tls_server, None
        if tls is not None:
            tls.shutdown()
        if self.server is None:
            return
        server, self.server = self.server, None
        if isinstance(server, HandedServer):
            server.close()
        else:
            server.shutdown()
        serving = [server] if tls is None else [server, tls]
        deadline = time.monotonic() + grace_seconds
        while any(s.active_associations for s in serving) and time.monotonic() < deadline:
            time.sleep(0.05)
        for assoc in [a for s in serving for a in s.active_associations]:
            assoc.abort()
        log.info("DICOM listener stopped")
