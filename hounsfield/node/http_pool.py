"""Extra HTTP processes: each serves the node's one listening socket beside the node's own.

Python runs one thread at a time per process, so one process answers HTTP on one core. The
node binds its HTTP port once and `hounsfield serve` starts `http_processes - 1` extra
processes that accept on the same socket: the kernel gives each new connection to one of
the processes waiting for one, so a busy process takes fewer. Each process has its own
archive, database pool and caches (checked against the files and the index on every use),
and serves every route: what an HTTP request changes is in the database, as it is for the
nodes of a cluster. /metrics shows the node's totals whichever process answers (each asks
the node for the others' values), and a client's outstanding requests are counted over all
of them for the fair turns (`web.fair.SharedCounts`). A process that dies is replaced within
a second or two; when the node stops or is killed, they finish the requests they are
answering and exit.
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
from typing import Any

from hounsfield.node.children import ChildProcesses
from hounsfield.node.http_child import http_child_main
from hounsfield.settings import Settings
from hounsfield.web.fair import SharedCounts

COUNT_SLOTS = 4096  # per process: clients hashed into them (see SharedCounts)


class HttpProcesses:
    """The node's extra HTTP processes, started in the background (the node serves at once)."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self.settings, self.processes = settings, processes
        ctx = multiprocessing.get_context("spawn")
        self.table = ctx.RawArray("i", processes * COUNT_SLOTS)
        self.listener: socket.socket | None = None
        self.children = ChildProcesses(
            "HTTP", processes, http_child_main, self._arguments, self._died
        )

    def counts(self, index: int) -> SharedCounts:
        """The outstanding requests' counts as process `index` keeps them."""
        return SharedCounts(self.table, index, self.processes, COUNT_SLOTS)

    def _arguments(self, index: int, link: socket.socket) -> tuple[Any, ...]:
        level = logging.getLogger().getEffectiveLevel()
        return (self.settings, link, self.listener, self.counts(index), index, level)

    def _died(self, index: int) -> None:
        """What a dead process counted is over."""
        for slot in range(index * COUNT_SLOTS, (index + 1) * COUNT_SLOTS):
            self.table[slot] = 0

    def start(self, listener: socket.socket) -> None:
        """Spawn processes 1..n-1 in the background, serving `listener`, and watch over them."""
        self.listener = listener
        self.children.start(wait=False)

    def stop(self, grace_seconds: float) -> None:
        """Tell every process to finish the requests it answers and exit; wait for them."""
        self.children.stop(grace_seconds)
