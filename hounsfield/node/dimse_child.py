"""A DIMSE process: serve the connections its listener hands over, report metrics, exit with it."""

from __future__ import annotations

import contextlib
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
from hounsfield.metrics import snapshot
from hounsfield.node import logs
from hounsfield.node.process import open_process
from hounsfield.settings import Settings

REPORT_SECONDS = 1.0
# Associations that end within this of one another are reported together: a snapshot cost
# this process and the listener about 1 ms, a tenth of a short C-FIND association's work.
COALESCE_SECONDS = 0.2
MESSAGE_BYTES = 1 << 20  # largest message on the link (a metrics snapshot is ~20 KB)


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
    signal.signal(signal.SIGTERM, lambda *_: _close_link(link))
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
    reporter = threading.Thread(target=_report, args=(link, stopping, changed), daemon=True)
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
        _send_snapshot(link)
        node.close()


def _close_link(link: socket.socket) -> None:
    """SIGTERM: take no more connections; the ones being served finish."""
    with contextlib.suppress(OSError):
        link.shutdown(socket.SHUT_RD)


def _report(link: socket.socket, stopping: threading.Event, changed: threading.Event) -> None:
    while not stopping.is_set():
        if changed.wait(REPORT_SECONDS):
            stopping.wait(COALESCE_SECONDS)
        changed.clear()
        _send_snapshot(link)


def _send_snapshot(link: socket.socket) -> None:
    with contextlib.suppress(OSError):
        link.send(json.dumps(snapshot()).encode())
