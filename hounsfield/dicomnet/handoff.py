"""Listener and receiver sides of handing accepted DICOM connections between processes."""

from __future__ import annotations

import gc
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer

from hounsfield.dicomnet.direct import association as direct
from hounsfield.dicomnet.direct import query
from hounsfield.dicomnet.lobby import Lobby
from hounsfield.dicomnet.serving import winding_down

GC_SECONDS = 30.0
_LISTENERS: weakref.WeakSet[DispatchingServer] = weakref.WeakSet()  # this process's
_dispatching = threading.local()  # `listener_load` while a listener's dispatch runs


def _listener_load() -> int:
    """Associations held by this process's listening servers (not those winding down, as
    the association limit counts them), and connections kept here whose association thread
    has not started yet."""
    return sum(
        s.starting + sum(1 for a in s.active_associations if not winding_down(a))
        for s in list(_LISTENERS)
    )


class SharedContexts(list):  # type: ignore[type-arg]
    """A server's presentation contexts, shared by its associations: pynetdicom deep-copies
    them for each association it creates (a few hundred per association here: 0.3 ms), and
    the negotiation only reads them."""

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedContexts:
        return SharedContexts(self)


class _Sharing(ThreadedAssociationServer):
    """A threaded association server whose associations share its contexts, and whose
    associations proposing only queries (and storage, with `store_path`) are served on the
    direct path (when `query_path` is on)."""

    query_path = True
    store_path = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.contexts = SharedContexts(self.contexts)  # type: ignore[has-type]

    def is_tls(self, request: socket.socket) -> bool:
        """Whether this connection needs a TLS handshake first (see `tls._Handshaking`)."""
        return False

    def _direct(self, request: Any) -> bool:
        """Whether the direct path serves this connection (never one that must speak TLS: a
        plain request sent to a TLS port goes to the handshake, and fails there)."""
        return (
            self.query_path
            and not self.is_tls(request)
            and direct.eligible(request, self.store_path)
            and direct.servable(self)
        )


# Chooses the process for a new connection (0 = this one) and hands it over; returns False
# when the connection stays here.
Dispatch = Callable[[socket.socket, Any], bool]


class DispatchingServer(_Sharing):
    """pynetdicom's threaded listener; an accepted connection waits in the lobby until its
    A-ASSOCIATE-RQ has arrived (or is closed after the association timeout), then may go
    to another process."""

    dispatch: Dispatch | None = None
    proxied: Callable[[Any], bool] | None = None  # connections that send a PROXY header first
    request_queue_size = 1024  # listen backlog: a burst of connections is not dropped (5)
    _lobby: Lobby | None = None
    _collected = 0.0  # time.monotonic() of the last garbage collection
    # Connections kept here whose association thread has not started: a connection kept a
    # moment ago is not among `active_associations` until its request thread has created
    # and started the Association, and a listener that did not count it took more than its
    # share (local limit exceeded) when connections came in quick succession.
    starting = 0

    def server_activate(self) -> None:
        """Listen, and count among this process's listening servers (see LoadBoard)."""
        self._starting_lock = threading.Lock()
        super().server_activate()
        _LISTENERS.add(self)

    def _count_starting(self, delta: int) -> None:
        with self._starting_lock:
            self.starting += delta

    def process_request(self, request: Any, client_address: Any) -> None:
        if self._lobby is None:
            self._lobby = Lobby(self._spoken, lambda: self.ae.acse_timeout, self.proxied)
        self._lobby.add(request, client_address)

    def _spoken(self, request: socket.socket, client_address: Any) -> None:
        if self.dispatch is not None:
            _dispatching.listener_load = _listener_load  # what LoadBoard.choose reads
            try:
                handed = self.dispatch(request, client_address)
            finally:
                _dispatching.listener_load = None
            if handed:
                request.close()  # the other process holds its own descriptor now
                return
        if self._direct(request):  # its association runs on a thread of its own
            direct.serve(self, request, client_address)
            return
        self._count_starting(1)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._count_starting(-1)
            raise

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Create and start the association (on the connection's own thread); from then on
        it is among `active_associations`."""
        try:
            super().finish_request(request, client_address)
        finally:
            self._count_starting(-1)

    def service_actions(self) -> None:
        """pynetdicom collects garbage after every 60 accepted connections (its associations'
        threads were not freed otherwise); a full collection of a node's heap took long
        enough that a burst of connections waited seconds to be accepted: at most once
        every GC_SECONDS here."""
        now = time.monotonic()
        if now - self._collected >= GC_SECONDS:
            self._collected = now
            gc.collect()

    def server_close(self) -> None:
        """Close the connections still waiting in the lobby, then the listening socket."""
        _LISTENERS.discard(self)
        if self._lobby is not None:
            self._lobby.close()
        super().server_close()


class HandedServer(_Sharing):
    """Serves connections accepted by another process; never listens itself."""

    def server_bind(self) -> None:
        """The listening address stays the listener's; nothing is bound here."""

    def server_activate(self) -> None:
        """No listen(): connections arrive through `take`."""

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Start the association: on the direct path when it serves it, any other as
        pynetdicom does. (A listener decides that before it keeps a connection, `_spoken`.)"""
        if self._direct(request):
            direct.serve(self, request, client_address)
            return
        super().finish_request(request, client_address)

    def take(self, sock: socket.socket, client_address: Any) -> None:
        """Serve a connection handed over by the listener. Its association (which runs on
        threads of its own) is created and started here, on the caller's thread: creating
        it does not wait on the peer, and a thread only for that cost a short association
        ~0.3 ms. A connection that needs a TLS handshake first gets a thread, so that a slow
        handshake does not hold up the connections handed over after it."""
        sock.setblocking(True)
        if self.is_tls(sock):
            self.process_request(sock, client_address)
        else:
            self.process_request_thread(sock, client_address)

    def close(self) -> None:
        """Stop taking connections (there is no serve_forever loop to shut down)."""
        if self in self.ae._servers:
            self.ae._servers.remove(self)
        self.socket.close()


class LoadBoard:
    """Open connections per DIMSE process, shared between them; index 0 is the listener."""

    def __init__(self, counts: Any, shares: list[int]) -> None:
        self.counts = counts  # multiprocessing.Array("i", n)
        self.shares = shares

    def add(self, index: int, delta: int) -> None:
        """Count a connection in (1) or out (-1) of process `index`."""
        with self.counts.get_lock():
            self.counts[index] += delta

    def choose(self, alive: list[bool], short: bool = False) -> int:
        """The live process with the most room under its share of the association limit; on
        a tie the least loaded, then an extra process before the listener (whose threads
        also run the HTTP server and the work queue), except for a `short` association (see
        `short_lived`), which the listener keeps rather than pay the hand-over (about 0.3 ms
        of the 1.7 ms a findscu association took to be accepted); the listener when all
        others are gone.

        When a listener hands a connection over, the listener's own count is first set to
        the associations its listening servers really hold, whatever was counted in and
        out: a count that drifted up once sent every connection to the other processes,
        which refused those beyond their share (local limit exceeded)."""
        listener_load: Callable[[], int] | None = getattr(_dispatching, "listener_load", None)
        with self.counts.get_lock():
            if listener_load is not None:  # called by a listener handing a connection over
                self.counts[0] = listener_load()
            loads = list(self.counts)
        candidates = [i for i, up in enumerate(alive) if up] or [0]
        last = -1 if short else 1  # the listener (0) last on a tie, or first
        return max(candidates, key=lambda i: (self.shares[i] - loads[i], -loads[i], last * i))


def short_lived(request: socket.socket) -> bool:
    """Whether a connection's A-ASSOCIATE-RQ, arrived whole, proposes only Verification and
    the C-FIND models (seen without consuming it): an echo or a query, over in a few
    milliseconds."""
    found = direct.proposal(request)
    return found is not None and bool(found[0]) and found[0] <= query.SYNTAXES


def shares_of(limit: int, processes: int) -> list[int]:
    """Split the node's association limit over its DIMSE processes (at least one each)."""
    base, extra = divmod(limit, processes)
    return [max(1, base + (1 if i < extra else 0)) for i in range(processes)]
