"""Set up one process of a node: pynetdicom's fast paths, the archive, the database log, and
the watch that reloads configuration changed on any node."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hounsfield.archive.context import Archive, open_archive
from hounsfield.cluster.config import ConfigWatch
from hounsfield.dicomnet.install import install as install_dicomnet
from hounsfield.imaging.decode import use_threads
from hounsfield.node import logs
from hounsfield.scheduled.applog import DatabaseLogHandler
from hounsfield.settings import Settings


@dataclass
class NodeProcess:
    """One process of a node: its archive, its log records going to the database too, and
    its configuration watch (add callbacks to `watch.on_change` for what else it caches)."""

    archive: Archive
    log_handler: DatabaseLogHandler
    watch: ConfigWatch

    def close(self) -> None:
        """Stop watching and logging to the database, and release the pool."""
        self.watch.stop()
        logging.getLogger().removeHandler(self.log_handler)
        self.log_handler.close()
        self.archive.close()


def open_process(settings: Settings) -> NodeProcess:
    """Set up any process of a node (the listener or an extra DIMSE process): pynetdicom's
    fast paths, JPEG 2000 decode threads, the archive, the application log in the database,
    the configuration watch."""
    verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG  # the CLI's --verbose
    install_dicomnet(verbose=verbose)
    use_threads(settings.decode_threads)
    archive = open_archive(settings)
    handler = DatabaseLogHandler(archive.engine, settings.node_name)
    logging.getLogger().addHandler(handler)
    watch = ConfigWatch(archive.engine, [archive.forget_partitions, archive.filesystems.invalidate])
    watch.check()
    watch.start()
    return NodeProcess(archive, handler, watch)


def open_pool_process(settings: Settings) -> Archive:
    """Set up a work-queue pool process (CPU-bound items): the archive only."""
    logs.configure(logging.WARNING)
    use_threads(1)  # the pool's processes decode side by side
    return open_archive(settings)
