"""The scheduler: on the node holding the scheduler singleton, runs each due service while
holding its ServiceLock."""

from __future__ import annotations

import importlib
import logging
import threading
from datetime import timedelta

from hounsfield.archive.context import Archive
from hounsfield.cluster.singleton import Singleton
from hounsfield.errors import NotFound
from hounsfield.scheduled import lock
from hounsfield.scheduled.registry import SERVICES, Run

log = logging.getLogger(__name__)
MODULES = (
    "watermark",
    "archive_copy",
    "maintenance",
    "folders",
    "applog",
    "audit_archive",
    "verification",
    "reconcile",
    "mirror_backfill",
)
LEASE = timedelta(minutes=10)


def load_services() -> None:
    """Import the service modules so they define themselves."""
    for name in MODULES:
        importlib.import_module(f"hounsfield.scheduled.{name}")


def ensure_services(archive: Archive) -> None:
    """Create the rows of every known service with its defaults (idempotent)."""
    load_services()
    for svc in SERVICES.values():
        lock.ensure(archive.engine, svc.name, svc.interval_seconds, svc.enabled)


def run_service(archive: Archive, name: str, *, force: bool = False) -> str | None:
    """Run one service now if it is due (or at once, forced) and no node holds it.

    Returns its result, or None when it was not due or another node holds it."""
    load_services()
    svc = SERVICES.get(name)
    if svc is None:
        raise NotFound(f"no service named {name!r}")
    node = archive.settings.node_name
    if not lock.acquire(archive.engine, name, node, LEASE, force=force):
        return None
    run = Run(archive, name, node, LEASE, state=dict(lock.get_service(archive.engine, name).state))
    try:
        result = svc.run(run)
    except Exception as exc:
        log.exception("service %s failed", name)
        lock.release(
            archive.engine, name, node, f"failed: {type(exc).__name__}: {exc}", state=run.state
        )
        return f"failed: {exc}"
    lock.release(archive.engine, name, node, result, state=run.state, disable=run.disable_after)
    log.info("service %s: %s", name, result)
    return result


class Scheduler:
    """A thread that looks for due services every few seconds. With a `leader` singleton,
    only the node holding it decides and runs services; when that node dies another takes
    the singleton (and the dead node's service locks are released by the heartbeat)."""

    def __init__(self, archive: Archive, leader: Singleton | None = None) -> None:
        self.archive = archive
        self.leader = leader
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Create missing service rows and start the thread."""
        ensure_services(self.archive)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop after the service running now, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(grace_seconds)
        if self.leader is not None:
            self.leader.release()

    def run_due(self) -> dict[str, str]:
        """Run every due service once; their results by name."""
        done = {}
        for row in lock.list_services(self.archive.engine):
            if self._stop.is_set():
                break
            if row.enabled and row.name in SERVICES:
                result = run_service(self.archive, row.name)
                if result is not None:
                    done[row.name] = result
        return done

    def _loop(self) -> None:
        while not self._stop.wait(self.archive.settings.scheduler_poll_seconds):
            try:
                if self.leader is None or self.leader.held():
                    self.run_due()
            except Exception:
                log.exception("scheduler pass failed")
