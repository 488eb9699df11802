"""Run a node: the DIMSE listener and the HTTP server, stopped cleanly on SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging

import uvicorn

from hounsfield.archive.context import open_archive
from hounsfield.dimse.server import DimseServer
from hounsfield.settings import Settings
from hounsfield.sites.devices import apply_declared
from hounsfield.web.app import create_app

log = logging.getLogger(__name__)


def serve(settings: Settings) -> None:
    """Serve until a signal arrives; in-flight stores finish before the process exits."""
    archive = open_archive(settings)
    apply_declared(archive, settings.devices)
    dimse = DimseServer(archive)
    dimse.start()
    config = uvicorn.Config(
        create_app(archive),
        host=settings.host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,
    )
    http = uvicorn.Server(config)
    log.info("HTTP listening on %s:%d", settings.host, settings.http_port)
    try:
        http.run()  # returns on SIGINT / SIGTERM
    finally:
        log.info("stopping")
        dimse.stop()
        archive.close()
        log.info("stopped")
