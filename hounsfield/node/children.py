"""A node's extra processes, each tied to it by a Unix socket pair: started, replaced when one
dies, their metrics gathered, stopped with it.

Each process says `ready` on its link once it serves, then sends a snapshot of its metrics now
and then (a JSON list, see `hounsfield.metrics`); it may also ask for everyone else's values
(`{"ask": n}`), answered with `{"answer": n, "rows": [...]}`: the node's own and every other
process's, so that /metrics shows the node's totals whichever process serves it. A process
whose link closes (its node stopped, or was killed) finishes what it serves and exits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from hounsfield.metrics import (
    ACTIVE_ASSOCIATIONS_NAME,
    Snapshot,
    add_snapshot_source,
    snapshot,
    snapshot_sources,
)

log = logging.getLogger(__name__)
START_SECONDS = 60.0
SUPERVISE_SECONDS = 1.0
MESSAGE_BYTES = 1 << 20  # largest message on a link (a metrics snapshot is ~20 KB)
GAUGES = frozenset({ACTIVE_ASSOCIATIONS_NAME})  # what a dead process no longer counts

# (index, the child's end of its link) -> the arguments of the child's entry point
Arguments = Callable[[int, socket.socket], tuple[Any, ...]]


class ChildProcesses:
    """Processes 1..count-1 of a node (the node's own process is 0), all of one kind."""

    def __init__(
        self,
        kind: str,
        count: int,
        target: Callable[..., None],
        arguments: Arguments,
        on_death: Callable[[int], None] | None = None,
    ) -> None:
        self.kind, self.count = kind, count
        self._target, self._arguments, self._on_death = target, arguments, on_death
        self._ctx = multiprocessing.get_context("spawn")
        self._children: dict[int, Any] = {}
        self._links: dict[int, socket.socket] = {}
        self._snapshots: dict[int, Snapshot] = {}
        self._retired: list[Snapshot] = []  # counters of processes that died
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def start(self, wait: bool = True) -> None:
        """Spawn the processes and watch over them; with `wait`, each is ready before this
        returns (one that is not raises), else they start in the background."""
        if wait:
            for index in range(1, self.count):
                self._spawn(index)
        add_snapshot_source(self.snapshots)
        self._supervisor = threading.Thread(
            target=self._supervise, args=(not wait,), name=f"{self.kind}-supervisor"
        )
        self._supervisor.start()
        log.info("%s served by %d processes", self.kind, self.count)

    def _spawn(self, index: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        child = self._ctx.Process(
            target=self._target,
            args=self._arguments(index, theirs),
            name=f"hounsfield-{self.kind}-{index}",
        )
        child.start()
        theirs.close()
        ours.settimeout(START_SECONDS)
        try:
            ready = ours.recv(MESSAGE_BYTES)
        except (TimeoutError, OSError):
            ready = b""
        if ready != b"ready":
            child.terminate()
            child.join(timeout=5)
            ours.close()
            raise RuntimeError(f"{self.kind} process {index} did not start (see its log lines)")
        ours.settimeout(None)
        with self._lock:
            self._children[index] = child
            self._links[index] = ours
        threading.Thread(target=self._listen, args=(index, ours), daemon=True).start()

    def _supervise(self, first_start: bool) -> None:
        """Start the processes not started yet (`first_start`), then replace any that dies
        (what it was serving is lost), keeping the counters it last reported."""
        if first_start:
            for index in range(1, self.count):
                if self._stopping.is_set():
                    return
                self._try_spawn(index)
        while not self._stopping.wait(SUPERVISE_SECONDS):
            for index, child in list(self._children.items()):
                if child.is_alive() or self._stopping.is_set():
                    continue
                log.error(
                    "%s process %d ended (exit code %s); starting another",
                    self.kind,
                    index,
                    child.exitcode,
                )
                with self._lock:
                    last = self._snapshots.pop(index, [])
                    self._retired.append([r for r in last if r[0] not in GAUGES])
                    self._links.pop(index).close()
                    del self._children[index]
                if self._on_death is not None:
                    self._on_death(index)
                self._try_spawn(index)

    def _try_spawn(self, index: int) -> None:
        try:
            self._spawn(index)
        except Exception as exc:  # the node serves without it
            log.error("cannot start %s process %d: %s", self.kind, index, exc)

    def _listen(self, index: int, link: socket.socket) -> None:
        while True:
            try:
                message = link.recv(MESSAGE_BYTES)
            except OSError:
                return
            if not message:
                return
            data = json.loads(message)
            if isinstance(data, dict):
                rows = self.rows_for(index)
                with contextlib.suppress(OSError):
                    link.send(json.dumps({"answer": data.get("ask"), "rows": rows}).encode())
                continue
            with self._lock:
                if self._links.get(index) is link:
                    self._snapshots[index] = data

    def snapshots(self, leave_out: int | None = None) -> list[Snapshot]:
        """The metric values the processes last reported (but `leave_out`'s), and the
        counters of dead ones."""
        with self._lock:
            kept = [s for i, s in self._snapshots.items() if i != leave_out]
            return [*self._retired, *kept]

    def rows_for(self, index: int) -> Snapshot:
        """What process `index` adds to its own values for /metrics: this process's and every
        other process's of the node."""
        rows = snapshot()
        for source in snapshot_sources():
            got: Iterable[Snapshot] = (
                self.snapshots(leave_out=index) if source == self.snapshots else source()
            )
            for snap in got:
                rows.extend(snap)
        return rows

    def alive(self) -> dict[int, socket.socket]:
        """The links of the processes alive now, by index."""
        with self._lock:
            children, links = dict(self._children), dict(self._links)
        return {i: link for i, link in links.items() if i in children and children[i].is_alive()}

    def stop(self, grace_seconds: float) -> None:
        """Tell every process to finish what it serves and exit; wait for them."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        for link in self._links.values():
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_WR)
        for child in self._children.values():
            child.join(timeout=grace_seconds + 5)
            if child.is_alive():
                log.warning("%s did not stop in time; terminated", child.name)
                child.terminate()
                child.join(timeout=5)
        for link in self._links.values():
            link.close()
