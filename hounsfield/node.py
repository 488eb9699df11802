"""Run a node: the DIMSE listener and the HTTP server, stopped cleanly on SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn

from hounsfield.archive.context import open_archive
from hounsfield.dimse.processes import DimseProcesses
from hounsfield.dimse.server import DimseServer
from hounsfield.scheduled.background import Background
from hounsfield.settings import Settings
from hounsfield.sites.devices import apply_declared
from hounsfield.web.app import create_app

log = logging.getLogger(__name__)


def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT; in-flight stores finish before the process exits."""
    archive = open_archive(settings)
    apply_declared(archive, settings.devices)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    dimse = DimseServer(archive)
    count = settings.dimse_process_count
    processes = DimseProcesses(settings, count) if count > 1 else None
    background = Background(archive)
    http = uvicorn.Server(
        uvicorn.Config(
            create_app(archive),
            host=settings.host,
            port=settings.http_port,
            log_level="warning",
            access_log=False,
        )
    )
    # Off the main thread uvicorn leaves signals alone: this function owns the shutdown.
    web = threading.Thread(target=http.run, name="http", daemon=True)
    try:
        background.start()
        if processes is not None:
            processes.start()
        dimse.start(processes)
        web.start()
        log.info("HTTP listening on %s:%d", settings.host, settings.http_port)
        while not stop.wait(0.5):
            if not web.is_alive():
                log.error("HTTP server stopped unexpectedly")
                break
    finally:
        log.info("stopping")
        http.should_exit = True
        background.stop()
        dimse.stop()
        if processes is not None:
            processes.stop(grace_seconds=10.0)
        if web.ident is not None:  # started
            web.join(timeout=10)
        archive.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")
