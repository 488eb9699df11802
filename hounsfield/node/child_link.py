"""An extra process's side of its link to the node: metric reports, and asking for the others'
values (see `hounsfield.node.children` for the messages)."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
from concurrent.futures import Future

from hounsfield.errors import NodeUnavailable
from hounsfield.metrics import Snapshot, snapshot
from hounsfield.node.children import MESSAGE_BYTES

REPORT_SECONDS = 1.0
# Associations that end within this of one another are reported together: a snapshot cost
# this process and the listener about 1 ms, a tenth of a short C-FIND association's work.
COALESCE_SECONDS = 0.2
ASK_SECONDS = 5.0


def report(link: socket.socket, stopping: threading.Event, changed: threading.Event) -> None:
    """Send a snapshot every REPORT_SECONDS, and soon after `changed` is set, until `stopping`."""
    while not stopping.is_set():
        if changed.wait(REPORT_SECONDS):
            stopping.wait(COALESCE_SECONDS)
        changed.clear()
        send_snapshot(link)


def close_link(link: socket.socket) -> None:
    """Stop reading the link (on SIGTERM): the process takes no more work, finishes what it
    serves and exits."""
    with contextlib.suppress(OSError):
        link.shutdown(socket.SHUT_RD)


def send_snapshot(link: socket.socket) -> None:
    """This process's metric values, to the node."""
    with contextlib.suppress(OSError):
        link.send(json.dumps(snapshot()).encode())


class Answers:
    """Questions to the node over the link, matched with its answers by `read` (which runs
    in one thread until the link closes)."""

    def __init__(self, link: socket.socket) -> None:
        self.link = link
        self._numbers = itertools.count(1)
        self._waiting: dict[int, Future[Snapshot]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def others(self) -> Snapshot:
        """The node's and its other processes' metric values; raises NodeUnavailable when
        the node does not answer within ASK_SECONDS or the link is closed."""
        waiting: Future[Snapshot] = Future()
        with self._lock:
            if self._closed:
                raise NodeUnavailable("the node's own process is gone")
            number = next(self._numbers)
            self._waiting[number] = waiting
        try:
            self.link.send(json.dumps({"ask": number}).encode())
            return waiting.result(ASK_SECONDS)
        except (OSError, TimeoutError) as exc:
            raise NodeUnavailable(f"the node's own process did not answer: {exc!r}") from exc
        finally:
            with self._lock:
                self._waiting.pop(number, None)

    def read(self) -> None:
        """Hand each answer to its question until the link closes (the node went away, or
        this process was told to stop); then fail the questions still waiting."""
        while True:
            try:
                message = self.link.recv(MESSAGE_BYTES)
            except OSError:
                break
            if not message:
                break
            answer = json.loads(message)
            with self._lock:
                waiting = self._waiting.get(answer.get("answer"))
            if waiting is not None and not waiting.done():
                waiting.set_result(answer.get("rows", []))
        with self._lock:
            self._closed = True
            for waiting in self._waiting.values():
                if not waiting.done():
                    waiting.set_exception(ConnectionError("the node's link closed"))
