"""The heartbeat: a node says every few seconds that it lives, how it is, and takes back
what nodes that stopped beating held."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from hounsfield.archive.context import Archive
from hounsfield.cluster import nodes
from hounsfield.cluster.probe import probe_storage
from hounsfield.cluster.reaper import reap

log = logging.getLogger(__name__)


@dataclass
class Condition:
    """What the last beat found: can this node reach its database and storage, and is it
    asked to drain."""

    database: bool = True
    storage: bool = True
    draining: bool = False
    problem: str = ""

    @property
    def may_claim(self) -> bool:
        """Whether the node should take work items: only when it can carry them out."""
        return self.database and self.storage and not self.draining


class Heartbeat:
    """Register the node, then beat every `heartbeat_seconds` in a thread; each beat also
    releases what nodes down for `node_down_seconds` held."""

    def __init__(self, archive: Archive, associations: Callable[[], int]) -> None:
        self.archive, self.associations = archive, associations
        self.info: nodes.NodeInfo | None = None
        self.condition = Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        """This node's name (as registered; the node_name setting before that)."""
        return self.info.name if self.info is not None else self.archive.settings.node_name

    def start(self, info: nodes.NodeInfo) -> None:
        """Register (as `info` says) and start beating."""
        self.info = info
        nodes.register(self.archive.engine, info)
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> Condition:
        """One beat: probe the storage, record the beat, reap dead nodes."""
        settings = self.archive.settings
        storage_problem = probe_storage(self.archive, self.name)
        try:
            draining = nodes.beat(
                self.archive.engine,
                self.name,
                healthy=not storage_problem,
                problem=storage_problem,
                associations=self.associations(),
            )
            dead = [
                n
                for n in nodes.down_nodes(self.archive.engine, settings.node_down_seconds)
                if n != self.name
            ]
            reap(self.archive.engine, dead)
            database, problem = True, storage_problem
        except Exception as exc:
            database, draining = False, self.condition.draining
            problem = f"database unavailable: {str(exc).splitlines()[0][:200]}"
        previous = self.condition
        self.condition = Condition(database, not storage_problem, draining, problem)
        if self.condition.may_claim != previous.may_claim or problem != previous.problem:
            if problem:
                log.warning("node %s: %s", self.name, problem)
            if draining and not previous.draining:
                log.warning("node %s is draining: no new associations or work items", self.name)
        return self.condition

    def _loop(self) -> None:
        every = self.archive.settings.heartbeat_seconds
        next_at = time.monotonic() + every
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            next_at = max(next_at + every, time.monotonic())  # a slow beat is not made up
            try:
                self.beat()
            except Exception:
                log.exception("heartbeat failed")

    def stop(self) -> None:
        """Stop beating and record a clean stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        try:
            nodes.stopped(self.archive.engine, self.name)
        except Exception as exc:
            log.warning("cannot record the stop of node %s: %s", self.name, exc)


class DrainFlag:
    """Whether this node is asked to drain, read again at most every `every` seconds (for
    processes that do not beat: the extra DIMSE processes)."""

    def __init__(self, archive: Archive, name: str, every: float = 1.0) -> None:
        self.archive, self.name, self.every = archive, name, every
        self._value, self._read_at = False, -1e9
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            if time.monotonic() - self._read_at > self.every:
                # The last answer stands while the database is away.
                with contextlib.suppress(Exception):
                    self._value = nodes.draining(self.archive.engine, self.name)
                self._read_at = time.monotonic()
            return self._value
