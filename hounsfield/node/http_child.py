"""An extra HTTP process: serve the node's listening socket beside it, report metrics, exit
with it."""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time

from hounsfield.cluster.heartbeat import Condition, DrainFlag
from hounsfield.metrics import add_snapshot_source
from hounsfield.node import logs
from hounsfield.node.child_link import Answers, close_link, report, send_snapshot
from hounsfield.node.http_server import http_server
from hounsfield.node.process import open_process
from hounsfield.settings import Settings
from hounsfield.web.app import create_app
from hounsfield.web.fair import SharedCounts

STOP_SECONDS = 10.0  # for the requests being answered when the node stops (as its own)


def http_child_main(
    settings: Settings,
    link: socket.socket,
    listener: socket.socket,
    counts: SharedCounts,
    index: int,
    log_level: int = logging.INFO,
) -> None:
    """Serve HTTP on `listener` (the node's own socket), counting each client's outstanding
    requests in `counts`, until the node goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the node too; it decides
    signal.signal(signal.SIGTERM, lambda *_: close_link(link))
    logs.configure(log_level)
    node = open_process(settings)
    draining = DrainFlag(node.archive, settings.node_name)
    answers = Answers(link)
    add_snapshot_source(lambda: [answers.others()])
    app = create_app(node.archive, lambda: Condition(draining=draining()), counts)
    server = http_server(app, settings)
    web = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="http", daemon=True
    )
    stopping, changed = threading.Event(), threading.Event()
    reporter = threading.Thread(target=report, args=(link, stopping, changed), daemon=True)
    try:
        web.start()
        while not server.started:
            if not web.is_alive():
                raise RuntimeError(f"HTTP process {index} could not start serving")
            time.sleep(0.02)
        link.sendall(b"ready")
        reporter.start()
        answers.read()  # until the node goes away or SIGTERM
    finally:
        server.should_exit = True
        web.join(timeout=STOP_SECONDS)
        stopping.set()
        changed.set()
        if reporter.is_alive():
            reporter.join(timeout=2)
        send_snapshot(link)
        node.close()
