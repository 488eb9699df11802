"""Associations served on one thread each: those proposing only Verification, C-FIND and
storage.

pynetdicom serves an association with two threads that pass every PDU and message to each
other through queues, a state machine and an ACSE object: a short findscu association cost
the server 7.3 ms of CPU that way and 4.5 ms this way (Orthanc: about 1.7), and a C-STORE of
a 0.5 MB object about 1 ms more (bench/RESULTS.md, "Notes"). An association that proposes
only Verification, the C-FIND models and storage SOP classes (modalities, query
workstations, findscu, storescu, echo checks) needs none of that. Here its thread reads each
PDU and answers it (`query`, `store`), and calls the server's handlers as pynetdicom would
(connection open and close, accepted, rejected, established, released, aborted, C-ECHO,
C-FIND, C-STORE) with events that carry what those handlers read: the association (peer AE
titles and address, partition), the request, its presentation context, identifier or data
set, and whether it was cancelled.

Admission, the association limit and the presentation context negotiation are pynetdicom's
rules (`admission`, `negotiate_as_acceptor`); its PDU classes decode the request and encode
the answer, once per distinct request (`negotiation`). Anything else goes to pynetdicom:
another service proposed, role selection, TLS, a request that did not arrive whole, or a
handler bound that this path does not call.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from pynetdicom import _config, evt
from pynetdicom.pdu import A_ASSOCIATE_RJ
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.presentation import PresentationContextTuple
from pynetdicom.service_class import ServiceClass, StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from hounsfield.dicomnet import admission
from hounsfield.dicomnet.direct import negotiation, query, store, wire
from hounsfield.dicomnet.direct.dimse import DirectEvent
from hounsfield.dicomnet.direct.wire import Message, PeerClosed, ProtocolError
from hounsfield.dicomnet.evented import PDU_FLOOR, PDU_ROOM

log = logging.getLogger(__name__)

PEEK_BYTES = 1 << 16  # a larger A-ASSOCIATE-RQ goes to pynetdicom
SMALLEST_PDU = 64  # the PDUs sent to a peer that announces a smaller maximum
ABORT_SECONDS = 1.0  # the most an A-ABORT waits to be sent
# The notification events this path triggers; a server with a handler bound to another one
# (pynetdicom's per-message debug log, say) is served by pynetdicom.
NOTIFIED = frozenset(
    {
        evt.EVT_CONN_OPEN,
        evt.EVT_CONN_CLOSE,
        evt.EVT_ACCEPTED,
        evt.EVT_REJECTED,
        evt.EVT_ESTABLISHED,
        evt.EVT_RELEASED,
        evt.EVT_ABORTED,
    }
)
# Intervention events of the negotiation: only their default handlers (which change nothing
# in the answer) are what this path does.
NEGOTIATION = {
    e: evt.get_default_handler(e)
    for e in (evt.EVT_USER_ID, evt.EVT_SOP_EXTENDED, evt.EVT_SOP_COMMON, evt.EVT_ASYNC_OPS)
}


@dataclass
class Peer:
    """One side of the association, as the handlers read it (`assoc.requestor`)."""

    ae_title: str
    address: str
    port: int


def _handlers(server: Any) -> dict[Any, Any]:
    return server._handlers  # type: ignore[no-any-return]


def servable(server: Any) -> bool:
    """Whether this path can serve `server`'s associations: the handlers bound to it are
    ones it calls, and pynetdicom's own AE title checks are off (admission does that)."""
    ae = server.ae
    if ae.require_calling_aet or ae.require_called_aet:
        return False
    handlers = _handlers(server)
    for event, bound in handlers.items():
        if isinstance(event, evt.NotificationEvent) and bound and event not in NOTIFIED:
            return False
    return all((handlers.get(e) or (None,))[0] in (None, d) for e, d in NEGOTIATION.items())


def _storage(uid: str) -> bool:
    """Whether `uid` is a storage SOP class (with pynetdicom's unrestricted storage service,
    any UID it does not know of too)."""
    found = uid_to_service_class(uid)
    return found is StorageServiceClass or (
        found is ServiceClass and bool(_config.UNRESTRICTED_STORAGE_SERVICE)
    )


def proposal(request: Any) -> tuple[frozenset[str], bool] | None:
    """What a plain connection's A-ASSOCIATE-RQ, already arrived whole, proposes (seen
    without consuming it, see `wire.proposed`); None for anything else."""
    if isinstance(request, ssl.SSLSocket) or not isinstance(request, socket.socket):
        return None
    try:
        head = request.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return None
    return wire.proposed(head)


def eligible(request: Any, stores: bool) -> bool:
    """Whether a connection's A-ASSOCIATE-RQ, already arrived whole, proposes only what this
    path serves (seen without consuming it): Verification and C-FIND, and with `stores`
    storage SOP classes, all without role selection."""
    found = proposal(request)
    if found is None or not found[0] or found[1]:
        return False
    others = found[0] - query.SYNTAXES
    return not others or (stores and all(_storage(uid) for uid in others))


class DirectAssociation(threading.Thread):
    """One association (an acceptor), served on this thread. It counts among its
    server's `active_associations` as pynetdicom's acceptor threads do (by name and
    `_server`), and among its AE's (`serving.ServingAE`)."""

    is_acceptor = True

    def __init__(self, server: Any, sock: socket.socket, client_address: Any) -> None:
        super().__init__(name="AcceptorThread(direct)", daemon=True)
        self._server, self.ae, self.sock = server, server.ae, sock
        host, port = (client_address[0], client_address[1]) if client_address else ("", 0)
        try:
            local = sock.getsockname()
        except OSError:  # the connection is gone: its thread finds out, and ends it
            local = ("", 0)
        self.requestor = Peer("", str(host), int(port))
        self.acceptor = Peer(str(server.ae_title).strip(), str(local[0]), int(local[1]))
        self.is_established = self.is_released = self.is_aborted = self.is_rejected = False
        self.contexts: dict[int, PresentationContextTuple] = {}  # accepted, as pynetdicom's
        self.peer_max_pdu = 0
        self.cancels: set[int] = set()  # message IDs a C-CANCEL has arrived for
        self._later: deque[tuple[int, wire.Body] | Message] = deque()
        self._assembler: wire.Assembler | None = None
        self._broken: Exception | None = None  # the connection failed while a C-FIND ran
        self._closed = threading.Event()
        # as pynetdicom's reader here (`evented`): a PDU no larger than this side's maximum
        # (with room), whole within the DIMSE timeout (or the idle timeout when shorter)
        largest = int(self.ae.maximum_pdu_size or 0)
        limit = max(largest, PDU_FLOOR) + PDU_ROOM if largest else None
        idle = self.ae.network_timeout
        whole = min((t for t in (self.ae.dimse_timeout, idle) if t), default=None)
        self._reader = wire.PduReader(sock, limit, idle, whole)

    # -- events ---------------------------------------------------------------------------

    def bind(self, event: Any, handler: Any, args: list[Any] | None = None) -> None:
        """Nothing to do: the server's handlers are read when an event happens (pynetdicom's
        server binds a handler added later to its running associations too)."""

    def unbind(self, event: Any, handler: Any) -> None:
        """As `bind`."""

    def _notify(self, event: Any) -> None:
        for handler, args in _handlers(self._server).get(event) or []:
            try:
                handler(DirectEvent(self, event), *(args or []))
            except Exception:
                log.exception("handler of %s failed", event.name)

    def intervene(self, event: Any, qevent: Any) -> Any:
        """Call the server's handler of an intervention event (or pynetdicom's default)."""
        bound = _handlers(self._server).get(event)
        handler, args = bound if bound else (evt.get_default_handler(event), None)
        return handler(qevent, *(args or []))

    # -- the association ------------------------------------------------------------------

    def run(self) -> None:
        self._notify(evt.EVT_CONN_OPEN)
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._negotiate():
                self._serve()
        except PeerClosed:
            self._ended_by_peer()
        except (ProtocolError, TimeoutError) as exc:
            log.warning("association from %r aborted: %s", self.requestor.ae_title, exc)
            self.abort(source=0x02)
        except OSError as exc:
            if not self.is_aborted:
                log.info("association from %r lost: %s", self.requestor.ae_title, exc)
                self._ended_by_peer()
        except Exception:
            log.exception("association from %r failed", self.requestor.ae_title)
            self.abort(source=0x02)
        finally:
            self.is_established = False
            self._close()
            self._notify(evt.EVT_CONN_CLOSE)

    def _ended_by_peer(self) -> None:
        if self.is_established:
            self.is_aborted, self.is_established = True, False
            self._notify(evt.EVT_ABORTED)

    def _negotiate(self) -> bool:
        """Answer the A-ASSOCIATE-RQ; True when accepted."""
        _kind, body = self._reader.read()
        found = negotiation.of(self._server).answer(self.ae, self._server.contexts, bytes(body))
        self.requestor.ae_title = found.calling
        # 0: no limit; a peer announcing less than a few bytes would get nothing at all
        self.peer_max_pdu = max(found.announced, SMALLEST_PDU) if found.announced else 0
        rejection = self._admit(found.calling, found.called)
        if rejection is None:
            acceptors = [a for a in self.ae.active_associations if a.is_acceptor]
            if len(acceptors) > self.ae.maximum_associations:
                rejection = (0x02, 0x03, 0x02)  # local limit exceeded
        if rejection is not None:
            answer = A_ASSOCIATE()
            answer.result, answer.result_source, answer.diagnostic = rejection
            rj = A_ASSOCIATE_RJ()
            rj.from_primitive(answer)
            self.send(rj.encode())
            self.is_rejected = True  # no longer counted against the association limit
            self._notify(evt.EVT_REJECTED)
            return False
        self.contexts = dict(found.contexts)
        self._assembler = wire.Assembler(frozenset(self.contexts))
        self.send(found.accept)
        self.is_established = True
        self._notify(evt.EVT_ACCEPTED)
        self._notify(evt.EVT_ESTABLISHED)
        return True

    def _admit(self, calling: str, called: str) -> admission.Rejection | None:
        admit = admission.admission_of(self.ae)
        if admit is None:
            return None
        try:
            return admit(self, calling, called, self.requestor.address, self.acceptor.port)  # type: ignore[arg-type]
        except Exception:
            log.exception("admission check failed; association from %r refused", calling)
            return (0x02, 0x01, 0x01)

    def _next(self) -> tuple[int, wire.Body] | Message:
        """What arrived while a C-FIND was answered first, then the next PDU."""
        if self._later:
            return self._later.popleft()
        if self._broken is not None:
            raise self._broken
        return self._reader.read()

    def _serve(self) -> None:
        assert self._assembler is not None
        while True:
            item = self._next()
            if len(item) == 3:
                self._answer(item)  # type: ignore[arg-type]
                continue
            kind, body = item  # type: ignore[misc]
            if kind == wire.P_DATA_TF:
                for message in self._assembler.feed(body):
                    self._answer(message)
            elif kind == wire.A_RELEASE_RQ:
                self.is_released, self.is_established = True, False
                self.send(wire.RELEASE_RP)
                self._notify(evt.EVT_RELEASED)
                return
            elif kind == wire.A_ABORT:
                self._ended_by_peer()
                return
            else:
                raise ProtocolError(f"an unexpected PDU of type 0x{kind:02X}")

    def _answer(self, message: Message) -> None:
        if message[1].field == store.C_STORE_RQ:
            store.answer(self, message)
        else:
            query.answer(self, message)

    def cancelled(self, msg_id: int) -> bool:
        """Whether a C-CANCEL for `msg_id` has arrived, or the peer has gone (an A-ABORT, a
        closed or broken connection: answering stops, and the association's loop ends it
        once the handler has). Whatever else arrived waits for that loop."""
        assert self._assembler is not None
        if self._broken is not None:
            return True
        try:
            while (pdu := self._reader.arrived()) is not None:
                if pdu[0] != wire.P_DATA_TF:
                    self._later.append(pdu)
                    if pdu[0] == wire.A_ABORT:
                        return True
                    continue
                for message in self._assembler.feed(pdu[1]):
                    if message[1].field == query.C_CANCEL_RQ:
                        self.cancels.add(message[1].number(0x0000_0120) or -1)
                    else:
                        self._later.append(message)
        except (PeerClosed, ProtocolError, OSError) as exc:
            self._broken = exc
            return True
        return msg_id in self.cancels

    def send(self, data: bytes) -> None:
        """Put PDUs on the wire, within the DIMSE timeout (a peer that stopped reading is
        given up on); the reader leaves the socket's timeout at what its last wait had left."""
        self.sock.settimeout(self.ae.dimse_timeout)
        self.sock.sendall(data)

    # -- ending ---------------------------------------------------------------------------

    def abort(self, source: int = 0x00) -> None:
        """Send an A-ABORT and close (from any thread); the association's thread ends."""
        if self.is_aborted or self._closed.is_set():
            return
        was_established = self.is_established
        self.is_aborted, self.is_established = True, False
        with contextlib.suppress(OSError):
            self.sock.settimeout(ABORT_SECONDS)  # a peer that stopped reading gets no more
            self.sock.sendall(wire.abort_pdu(source))
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        if was_established:
            self._notify(evt.EVT_ABORTED)

    def _close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.sock.close()


def serve(server: Any, request: socket.socket, client_address: Any) -> DirectAssociation:
    """Serve a connection on a thread of its own; returns that thread."""
    assoc = DirectAssociation(server, request, client_address)
    assoc.start()
    return assoc
