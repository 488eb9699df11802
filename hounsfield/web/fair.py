"""Fair turns for HTTP reads: when every turn is taken, a client with nothing else outstanding
goes first and the rest take turns client by client, so a viewer opening a study does not
wait behind other viewers' prefetch.

A node with several HTTP processes counts a client's outstanding requests over all of them
(`SharedCounts`): a viewer's six connections land in different processes, and a prefetch
with one connection in a process would otherwise look there like a viewer opening a study.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNGATED = ("/health", "/metrics")  # a load balancer's check never waits for a turn


def client_of(scope: Scope) -> Hashable:
    """Whose request this is: the caller's address and credentials (a bearer token or a web
    session's cookie), so that viewers behind one proxy are still told apart."""
    client = scope.get("client")
    host = client[0] if client else ""
    credentials = tuple(v for k, v in scope["headers"] if k in (b"authorization", b"cookie"))
    return host, credentials


class Counts(Protocol):
    """A client's requests running or waiting (in this process, or in all of the node's)."""

    def add(self, client: Hashable, delta: int) -> int:
        """Count `delta` more requests for `client`; how many there were before."""


class LocalCounts(dict[Hashable, int]):
    """Counted in this process alone."""

    def add(self, client: Hashable, delta: int) -> int:
        before = self.get(client, 0)
        if before + delta:
            self[client] = before + delta
        else:
            del self[client]
        return before


class SharedCounts:
    """Counted over all of a node's HTTP processes: in shared memory (`table`, made by the
    node), one row of `slots` counters per process, a client counted in the slot its address
    and credentials hash to (two clients that share a slot share a count). A process writes
    only its own row, so no lock is needed; the node zeroes the row of a process that died."""

    def __init__(self, table: Any, process: int, processes: int, slots: int) -> None:
        self.table, self.process, self.processes, self.slots = table, process, processes, slots

    def add(self, client: Hashable, delta: int) -> int:
        slot = zlib.crc32(repr(client).encode()) % self.slots
        before = sum(self.table[p * self.slots + slot] for p in range(self.processes))
        self.table[self.process * self.slots + slot] += delta
        return before


class Turns:
    """At most `slots` requests at once; when all are taken, waiting requests get the next
    free one in this order: first those of a client that had nothing else outstanding when
    they came (in order of arrival), then the others one client at a time, round robin
    (in each client's order of arrival)."""

    def __init__(self, slots: int, counts: Counts | None = None) -> None:
        self.free = slots
        self.outstanding: Counts = counts if counts is not None else LocalCounts()
        self.alone: deque[asyncio.Future[None]] = deque()
        self.rounds: OrderedDict[Hashable, deque[asyncio.Future[None]]] = OrderedDict()

    async def take(self, client: Hashable) -> None:
        """Wait for a turn (counted for `client` until `done`; call `give_back` once the
        turn is no longer needed)."""
        before = self.outstanding.add(client, 1)
        if self.free > 0 and not self.alone and not self.rounds:
            self.free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line = self.alone if before == 0 else self.rounds.setdefault(client, deque())
        line.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.give_back()  # the turn came as the caller gave up: pass it on
            else:
                _discard(line, turn)
                if not line and line is not self.alone:
                    self.rounds.pop(client, None)
            raise

    def give_back(self) -> None:
        """Hand the turn to the next waiting request, or free it."""
        turn = self._next()
        if turn is None:
            self.free += 1
        else:
            turn.set_result(None)

    def done(self, client: Hashable) -> None:
        """One request of `client` is over."""
        self.outstanding.add(client, -1)

    def _next(self) -> asyncio.Future[None] | None:
        while self.alone:
            turn = self.alone.popleft()
            if not turn.done():
                return turn
        while self.rounds:
            client, line = self.rounds.popitem(last=False)
            turn = line.popleft()
            if line:
                self.rounds[client] = line  # to the back of the round
            if not turn.done():
                return turn
        return None


def _discard(line: deque[asyncio.Future[None]], turn: asyncio.Future[None]) -> None:
    with contextlib.suppress(ValueError):
        line.remove(turn)


class FairTurns:
    """ASGI middleware: GET and HEAD requests wait for a turn (see `Turns`) and hold it until
    their answer starts; a streamed body is sent, at the client's pace, outside the turns.

    Requests that `remote` picks out (reads through a virtual partition, which wait on remote
    members) take turns of their own, `remote_slots` of them, and hold one until their answer
    ends: a fetched object is read in a worker thread while the answer streams, so a silent
    member holds up at most those turns and threads, never the node's own."""

    def __init__(
        self,
        app: ASGIApp,
        slots: int,
        counts: Counts | None = None,
        *,
        remote_slots: int = 1,
        remote: Callable[[Scope], bool] | None = None,
    ) -> None:
        self.app = app
        self.turns = Turns(slots, counts)
        self.remote_turns = Turns(remote_slots)
        self.remote = remote

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or scope["path"] in UNGATED
        ):
            await self.app(scope, receive, send)
            return
        remote = self.remote is not None and self.remote(scope)
        turns = self.remote_turns if remote else self.turns
        client = client_of(scope)
        try:
            await turns.take(client)
        except asyncio.CancelledError:
            turns.done(client)
            raise
        holding = True

        async def started(message: Message) -> None:
            nonlocal holding
            if holding and not remote and message["type"] == "http.response.start":
                holding = False
                turns.give_back()
            await send(message)

        try:
            await self.app(scope, receive, started)
        finally:
            if holding:
                turns.give_back()
            turns.done(client)
