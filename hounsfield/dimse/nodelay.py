"""Low latency on every DICOM socket: TCP_NODELAY, and a short poll of pynetdicom's DUL."""

from __future__ import annotations

import socket

from pynetdicom.events import Event

# pynetdicom's DUL thread sleeps this long whenever its socket has nothing to read; at its
# 1 ms default every PDU of a large object waits a millisecond.
DUL_POLL_SECONDS = 0.0002


def set_nodelay(event: Event) -> None:
    """EVT_CONN_OPEN handler: disable Nagle's algorithm and shorten the DUL's idle poll."""
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    event.assoc.dul._run_loop_delay = DUL_POLL_SECONDS
