"""A DIMSE process: serve the connections its listener hands over, report metrics, exit with it."""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
from typing import Any

from pynetdicom import evt

from hounsfield.cluster.heartbeat import DrainFlag
from hounsfield.dicomnet.handoff import LoadBoard
from hounsfield.dimse.server import DimseServer
from hounsfield.node import logs
from hounsfield.node.child_link import close_link, report, send_snapshot
from hounsfield.node.children import MESSAGE_BYTES
from hounsfield.node.process import open_process
from hounsfield.settings import Settings


def child_main(
    settings: Settings,
    link: socket.socket,
    index: int,
    counts: Any,
    shares: list[int],
    log_level: int = logging.INFO,
) -> None:
    """A DIMSE process: serve the connections the listener hands over until it goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the listener too; it decides
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: close_link(link))
    logs.configure(log_level)
    node = open_process(settings)
    archive = node.archive
    draining = DrainFlag(archive, settings.node_name)
    server = DimseServer(archive, board=LoadBoard(counts, shares), index=index, draining=draining)
    node.watch.on_change.append(server.admission.forget)
    server.start_handed()
    changed = threading.Event()  # an association ended: report without waiting
    assert server.server is not None
    server.server.bind(evt.EVT_CONN_CLOSE, lambda _event: changed.set())
    reporter = threading.Thread(target=report, args=(link, stopping, changed), daemon=True)
    reporter.start()
    link.sendall(b"ready")
    try:
        while True:
            try:
                message, fds, _flags, _address = socket.recv_fds(link, MESSAGE_BYTES, 1)
            except OSError:
                break
            if not fds:
                break  # the listener closed the link: stop
            conn = socket.socket(fileno=fds[0])
            server.take(conn, tuple(json.loads(message)))
    finally:
        server.stop()
        stopping.set()
        changed.set()
        reporter.join(timeout=2)
        send_snapshot(link)
        node.close()
