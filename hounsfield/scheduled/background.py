"""A node's background machinery: declared tiers and rules, the WorkQueue workers, the scheduler."""

from __future__ import annotations

import logging

from hounsfield.archive.context import Archive
from hounsfield.rules.store import apply_declared as apply_rules
from hounsfield.scheduled.applog import DatabaseLogHandler
from hounsfield.scheduled.scheduler import Scheduler
from hounsfield.storage.tiers import apply_declared as apply_filesystems
from hounsfield.workqueue.worker import Worker

log = logging.getLogger(__name__)


class Background:
    """Started with the DIMSE server, stopped before it."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.worker = Worker(archive)
        self.scheduler = Scheduler(archive) if archive.settings.scheduler else None
        self.log_handler: DatabaseLogHandler | None = None

    def start(self) -> None:
        """Log to the database; apply the TOML file's filesystems and rules; start the workers
        and the scheduler."""
        settings = self.archive.settings
        self.log_handler = DatabaseLogHandler(self.archive.engine, settings.node_name)
        logging.getLogger().addHandler(self.log_handler)
        apply_filesystems(self.archive.engine, settings.filesystems)
        apply_rules(self.archive.engine, settings.rules)
        self.archive.filesystems.invalidate()
        if self.worker.threads:
            self.worker.start()
        if self.scheduler is not None:
            self.scheduler.start()

    def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop scheduling, let running work items finish (their leases cover the rest)."""
        if self.scheduler is not None:
            self.scheduler.stop(grace_seconds)
        self.worker.stop(grace_seconds)
        if self.log_handler is not None:
            logging.getLogger().removeHandler(self.log_handler)
            self.log_handler.close()
