"""Low latency on every DICOM socket: TCP_NODELAY."""

from __future__ import annotations

import socket

from pynetdicom.events import Event


def set_nodelay(event: Event) -> None:
    """EVT_CONN_OPEN handler: disable Nagle's algorithm."""
    dul = getattr(event.assoc, "dul", None)  # the direct path sets its own
    sock = getattr(getattr(dul, "socket", None), "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
