"""Listener and receiver sides of handing accepted DICOM connections between processes."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer

# Chooses the process for a new connection (0 = this one) and hands it over; returns False
# when the connection stays here.
Dispatch = Callable[[socket.socket, Any], bool]


class DispatchingServer(ThreadedAssociationServer):
    """pynetdicom's threaded listener; each accepted connection may go to another process."""

    dispatch: Dispatch | None = None

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.dispatch is not None and self.dispatch(request, client_address):
            request.close()  # the other process holds its own descriptor now
            return
        super().process_request(request, client_address)


class HandedServer(ThreadedAssociationServer):
    """Serves connections accepted by another process; never listens itself."""

    def server_bind(self) -> None:
        """The listening address stays the listener's; nothing is bound here."""

    def server_activate(self) -> None:
        """No listen(): connections arrive through `take`."""

    def take(self, sock: socket.socket, client_address: Any) -> None:
        """Serve a connection handed over by the listener, on a new thread."""
        sock.setblocking(True)
        self.process_request(sock, client_address)

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

    def choose(self, alive: list[bool]) -> int:
        """The live process with the most room under its share of the association limit; on
        a tie the least loaded, then an extra process before the listener (whose threads
        also run the HTTP server and the work queue); the listener when all others are gone."""
        with self.counts.get_lock():
            loads = list(self.counts)
        candidates = [i for i, up in enumerate(alive) if up] or [0]
        return max(candidates, key=lambda i: (self.shares[i] - loads[i], -loads[i], i))


def shares_of(limit: int, processes: int) -> list[int]:
    """Split the node's association limit over its DIMSE processes (at least one each)."""
    base, extra = divmod(limit, processes)
    return [max(1, base + (1 if i < extra else 0)) for i in range(processes)]
