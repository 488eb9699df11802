"""Configuration changes made on any node take effect on every node within a second.

Triggers on the configuration tables (partitions, devices, filesystems, rules, scheduled
reconciliations) bump one version number in the same transaction as the change. Each
process compares it every second and, when it moved, drops what it cached.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from sqlalchemy import Engine, select

from hounsfield.db import engine as db
from hounsfield.db.tables import config_version

log = logging.getLogger(__name__)


def current_version(engine: Engine) -> int:
    """The configuration's version number."""
    with db.read(engine) as conn:
        return int(conn.scalar(select(config_version.c.version)) or 0)


class ConfigWatch:
    """A thread that calls `on_change` callbacks when the configuration version moves."""

    def __init__(
        self, engine: Engine, on_change: Sequence[Callable[[], None]], every: float = 1.0
    ) -> None:
        self.engine, self.on_change, self.every = engine, list(on_change), every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.version: int | None = None

    def check(self) -> bool:
        """Compare the version once; True (after the callbacks ran) when it moved."""
        version = current_version(self.engine)
        moved = self.version is not None and version != self.version
        self.version = version
        if moved:
            log.info("configuration changed (version %d): reloading", version)
            for callback in self.on_change:
                callback()
        return moved

    def start(self) -> None:
        """Watch in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="config-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.check()
            except Exception as exc:  # the database is away: try again in a second
                log.debug("configuration check failed: %s", exc)

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
