"""Set up one process of a node: pynetdicom's fast paths, the archive, the database log."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hounsfield.archive.context import Archive, open_archive
from hounsfield.dicomnet.install import install as install_dicomnet
from hounsfield.scheduled.applog import DatabaseLogHandler
from hounsfield.settings import Settings


@dataclass
class NodeProcess:
    """One process of a node: its archive, and its log records going to the database too."""

    archive: Archive
    log_handler: DatabaseLogHandler

    def close(self) -> None:
        """Stop logging to the database and release the pool."""
        logging.getLogger().removeHandler(self.log_handler)
        self.log_handler.close()
        self.archive.close()


def open_process(settings: Settings) -> NodeProcess:
    """Set up any process of a node (the listener or an extra DIMSE process): pynetdicom's
    fast paths, the archive, and the application log in the database."""
    verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG  # the CLI's --verbose
    install_dicomnet(verbose=verbose)
    archive = open_archive(settings)
    handler = DatabaseLogHandler(archive.engine, settings.node_name)
    logging.getLogger().addHandler(handler)
    return NodeProcess(archive, handler)


def open_pool_process(settings: Settings) -> Archive:
    """Set up a work-queue pool process (CPU-bound items): the archive only."""
    logging.basicConfig(level=logging.WARNING)
    return open_archive(settings)
