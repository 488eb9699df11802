"""TCP_NODELAY on every DICOM socket: request/response traffic otherwise stalls on Nagle."""

from __future__ import annotations

import socket

from pynetdicom.events import Event


def set_nodelay(event: Event) -> None:
    """EVT_CONN_OPEN handler: disable Nagle's algorithm on the association's socket."""
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
