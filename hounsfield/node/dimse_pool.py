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

import json
import logging
import multiprocessing
import socket
from typing import Any

from hounsfield.dicomnet.handoff import LoadBoard, shares_of, short_lived
from hounsfield.node.children import ChildProcesses
from hounsfield.node.dimse_child import child_main
from hounsfield.settings import Settings

log = logging.getLogger(__name__)


class DimseProcesses:
    """The listener's view of its extra DIMSE processes; a process that dies is replaced."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self.settings = settings
        self.count = processes
        shares = shares_of(settings.max_associations, processes)
        self.board = LoadBoard(multiprocessing.get_context("spawn").Array("i", processes), shares)
        self.children = ChildProcesses("DIMSE", processes, child_main, self._arguments, self._died)

    def _arguments(self, index: int, link: socket.socket) -> tuple[Any, ...]:
        level = logging.getLogger().getEffectiveLevel()
        return (self.settings, link, index, self.board.counts, self.board.shares, level)

    def _died(self, index: int) -> None:
        with self.board.counts.get_lock():
            self.board.counts[index] = 0

    def start(self) -> None:
        """Spawn processes 1..n-1, wait until each is ready, then watch over them."""
        self.children.start(wait=True)

    def dispatch(self, request: socket.socket, client_address: Any) -> bool:
        """Hand `request` to the chosen process; False keeps it in the listener."""
        links = self.children.alive()
        alive = [True] + [i in links for i in range(1, self.count)]
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
        self.children.stop(grace_seconds)
