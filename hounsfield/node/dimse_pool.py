"""Extra DIMSE processes: the listener hands each new connection to the least busy one.

Python threads share one core, so one process cannot use a second core for C-STORE. The
node's listener accepts every connection and passes its descriptor (SCM_RIGHTS over a Unix
socket pair) to the process with the most room under its share of the association limit;
each process serves its connections with its own pynetdicom AE, archive and database pool.
Processes send their metric values to the listener every second, which adds them to its
own on /metrics. A process that dies is replaced within a second or two. When the listener
goes away (stop, or killed) a process stops taking connections, lets the ones it serves
finish, and exits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import socket
import threading
from typing import Any

from hounsfield.dicomnet.handoff import LoadBoard, shares_of, short_lived
from hounsfield.metrics import ACTIVE_ASSOCIATIONS_NAME, Snapshot, add_snapshot_source
from hounsfield.node.dimse_child import MESSAGE_BYTES, child_main
from hounsfield.settings import Settings

log = logging.getLogger(__name__)
START_SECONDS = 60.0
SUPERVISE_SECONDS = 1.0


class DimseProcesses:
    """The listener's view of its extra DIMSE processes; a process that dies is replaced."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self.settings = settings
        self.count = processes
        ctx = multiprocessing.get_context("spawn")
        shares = shares_of(settings.max_associations, processes)
        self.board = LoadBoard(ctx.Array("i", processes), shares)
        self._ctx = ctx
        self._children: dict[int, Any] = {}
        self._links: dict[int, socket.socket] = {}
        self._snapshots: dict[int, Snapshot] = {}
        self._retired: list[Snapshot] = []  # counters of processes that died
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        """Spawn processes 1..n-1, wait until each is ready, then watch over them."""
        for index in range(1, self.count):
            self._spawn(index)
        add_snapshot_source(self.snapshots)
        self._supervisor = threading.Thread(target=self._supervise, name="dimse-supervisor")
        self._supervisor.start()
        log.info("DICOM connections shared by %d processes", self.count)

    def _spawn(self, index: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        child = self._ctx.Process(
            target=child_main,
            args=(
                self.settings,
                theirs,
                index,
                self.board.counts,
                self.board.shares,
                logging.getLogger().getEffectiveLevel(),
            ),
            name=f"hounsfield-dimse-{index}",
        )
        child.start()
        theirs.close()
        ours.settimeout(START_SECONDS)
        try:
            ready = ours.recv(MESSAGE_BYTES)
        except TimeoutError:
            ready = b""
        if ready != b"ready":
            child.terminate()
            ours.close()
            raise RuntimeError(f"DIMSE process {index} did not start (see its log lines)")
        ours.settimeout(None)
        with self._lock:
            self._children[index] = child
            self._links[index] = ours
        threading.Thread(target=self._listen, args=(index, ours), daemon=True).start()

    def _supervise(self) -> None:
        """Replace a process that died (its connections are lost; what it acknowledged is
        stored), keeping the counters it last reported."""
        while not self._stopping.wait(SUPERVISE_SECONDS):
            for index, child in list(self._children.items()):
                if child.is_alive() or self._stopping.is_set():
                    continue
                log.error(
                    "DIMSE process %d ended (exit code %s); starting another", index, child.exitcode
                )
                with self._lock:
                    last = self._snapshots.pop(index, [])
                    self._retired.append([r for r in last if r[0] != ACTIVE_ASSOCIATIONS_NAME])
                    self._links.pop(index).close()
                with self.board.counts.get_lock():
                    self.board.counts[index] = 0
                try:
                    self._spawn(index)
                except Exception as exc:  # the listener serves without it
                    log.error("cannot start DIMSE process %d: %s", index, exc)
                    with self._lock:
                        self._children.pop(index, None)

    def _listen(self, index: int, link: socket.socket) -> None:
        while True:
            try:
                message = link.recv(MESSAGE_BYTES)
            except OSError:
                return
            if not message:
                return
            with self._lock:
                if self._links.get(index) is link:
                    self._snapshots[index] = json.loads(message)

    def snapshots(self) -> list[Snapshot]:
        """The metric values the processes last reported, and the counters of dead ones."""
        with self._lock:
            return [*self._retired, *self._snapshots.values()]

    def dispatch(self, request: socket.socket, client_address: Any) -> bool:
        """Hand `request` to the chosen process; False keeps it in the listener."""
        with self._lock:
            children, links = dict(self._children), dict(self._links)
        alive = [True] + [
            i in children and i in links and children[i].is_alive() for i in range(1, self.count)
        ]
        index = self.board.choose(alive, short_lived(request))
        if index == 0:
            self.board.add(0, 1)
            return False
        address = json.dumps(list(client_address)).encode()
        self.board.add(index, 1)  # before the process can count it out again
        try:
            socket.send_fds(links[index], [address], [request.fileno()])
        except OSError as exc:
            log.error("cannot hand a connection to DIMSE process %d: %s", index, exc)
            self.board.add(index, -1)
            self.board.add(0, 1)
            return False
        return True

    def stop(self, grace_seconds: float) -> None:
        """Tell every process to finish its associations and exit; wait for them."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        for link in self._links.values():
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_WR)
        for child in self._children.values():
            child.join(timeout=grace_seconds + 5)
            if child.is_alive():
                log.warning("DIMSE process %s did not stop in time; terminated", child.name)
                child.terminate()
                child.join(timeout=5)
        for link in self._links.values():
            link.close()
