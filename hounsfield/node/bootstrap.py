"""The one place a node is assembled: process set-up, the DIMSE pool, workers, scheduler, HTTP."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn

from hounsfield.archive.context import Archive
from hounsfield.catalog import partitions
from hounsfield.db import engine as db
from hounsfield.dimse.server import DimseServer
from hounsfield.node.dimse_pool import DimseProcesses
from hounsfield.node.process import open_pool_process, open_process
from hounsfield.rules.saved import apply_declared as apply_rules
from hounsfield.scheduled.scheduler import Scheduler
from hounsfield.settings import Settings
from hounsfield.sites.devices import apply_declared as apply_devices
from hounsfield.sites.reconcile_schedule import apply_declared as apply_reconcile_jobs
from hounsfield.storage.tiers import apply_declared as apply_filesystems
from hounsfield.web.app import create_app
from hounsfield.workers.runner import Worker

log = logging.getLogger(__name__)


def apply_declared(archive: Archive) -> None:
    """Make the database match what the TOML file declares: partitions, devices,
    filesystems, rules and scheduled reconciliations."""
    settings = archive.settings
    with db.write(archive.engine) as conn:
        partitions.apply_declared(conn, settings.partitions)
    apply_devices(archive, settings.devices)
    apply_filesystems(archive.engine, settings.filesystems)
    apply_rules(archive.engine, settings.rules)
    archive.filesystems.invalidate()
    archive.forget_partitions()
    apply_reconcile_jobs(archive, settings.reconcile)


def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT; in-flight stores finish before the process exits."""
    node = open_process(settings)
    archive = node.archive
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    apply_declared(archive)
    dimse = DimseServer(archive)
    count = settings.dimse_process_count
    processes = DimseProcesses(settings, count) if count > 1 else None
    worker = Worker(archive, pool_opener=open_pool_process)
    scheduler = Scheduler(archive) if settings.scheduler else None
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
        if worker.threads:
            worker.start()
        if scheduler is not None:
            scheduler.start()
        if processes is not None:
            processes.start()
        dimse.start(processes.dispatch if processes is not None else None)
        web.start()
        log.info("HTTP listening on %s:%d", settings.host, settings.http_port)
        while not stop.wait(0.5):
            if not web.is_alive():
                log.error("HTTP server stopped unexpectedly")
                break
    finally:
        log.info("stopping")
        http.should_exit = True
        if scheduler is not None:
            scheduler.stop(30.0)
        worker.stop(30.0)  # running items finish; their leases cover the rest
        dimse.stop()
        if processes is not None:
            processes.stop(grace_seconds=10.0)
        if web.ident is not None:  # started
            web.join(timeout=10)
        node.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")
