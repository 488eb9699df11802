"""The one place a node is assembled: process set-up, the DIMSE pool, workers, scheduler, HTTP."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from types import FrameType

from hounsfield import __version__
from hounsfield.archive.context import Archive
from hounsfield.catalog import partitions
from hounsfield.cluster.heartbeat import Heartbeat
from hounsfield.cluster.nodes import NodeInfo
from hounsfield.cluster.singleton import Singleton
from hounsfield.db import engine as db
from hounsfield.dimse.server import DimseServer
from hounsfield.metrics import ACTIVE_ASSOCIATIONS_NAME, NODE_REGISTRY
from hounsfield.node.dimse_pool import DimseProcesses
from hounsfield.node.http_pool import HttpProcesses
from hounsfield.node.http_server import http_server, listening_socket
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


def _info(settings: Settings, dimse_port: int, runs: list[str]) -> NodeInfo:
    """What this node tells the registry about itself."""
    address = settings.node_address
    if not address:
        address = settings.host if settings.host not in ("0.0.0.0", "::") else socket.getfqdn()
    return NodeInfo(
        name=settings.node_name,
        address=address,
        dimse_port=dimse_port,
        http_port=settings.http_port,
        version=__version__,
        pid=os.getpid(),
        runs=tuple(runs),
    )


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
    count = settings.dimse_process_count
    processes = DimseProcesses(settings, count) if count > 1 else None

    def associations() -> int:
        if processes is not None:
            return sum(processes.board.counts)
        return int(NODE_REGISTRY.get_sample_value(ACTIVE_ASSOCIATIONS_NAME) or 0)

    runs = ["dimse", "http"]
    if settings.queue_threads:
        runs.append("workers")
    if settings.scheduler:
        runs.append("scheduler")
    heartbeat = Heartbeat(archive, associations)
    dimse = DimseServer(archive, draining=lambda: heartbeat.condition.draining)
    node.watch.on_change.append(dimse.admission.forget)
    worker = Worker(
        archive,
        pool_opener=open_pool_process,
        may_claim=lambda: heartbeat.condition.may_claim,
    )
    scheduler = (
        Scheduler(archive, leader=Singleton(archive.engine, "scheduler"))
        if settings.scheduler
        else None
    )
    http_count = settings.http_process_count
    http_processes = HttpProcesses(settings, http_count) if http_count > 1 else None
    counts = http_processes.counts(0) if http_processes is not None else None
    http = http_server(create_app(archive, lambda: heartbeat.condition, counts), settings)
    listener: socket.socket | None = None
    web: threading.Thread | None = None
    try:
        # One socket for every HTTP process; off the main thread uvicorn leaves signals
        # alone: this function owns the shutdown.
        listener = listening_socket(http)
        web = threading.Thread(
            target=http.run, kwargs={"sockets": [listener]}, name="http", daemon=True
        )
        if worker.threads:
            worker.start()
        if scheduler is not None:
            scheduler.start()
        if processes is not None:
            processes.start()
        dimse.start(processes.dispatch if processes is not None else None)
        heartbeat.start(_info(settings, dimse.port, runs))
        web.start()
        if http_processes is not None:
            http_processes.start(listener)
        scheme = "HTTPS" if http.config.is_ssl else "HTTP"
        log.info("%s listening on %s:%d", scheme, settings.host, settings.http_port)
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
        if http_processes is not None:
            http_processes.stop(grace_seconds=10.0)
        if web is not None and web.ident is not None:  # started
            web.join(timeout=10)
        if listener is not None:
            listener.close()
        heartbeat.stop()
        node.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")
