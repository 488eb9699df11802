"""The nodes a client opens associations to: round robin over live ones, quarantine, affinity."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Sequence

from hounsfield.dicomnet.peer import Address, format_address, parse_address

DEFAULT_QUARANTINE = 10.0  # seconds a failed node is tried only after the live ones


def parse_nodes(text: str | Sequence[str]) -> tuple[Address, ...]:
    """Addresses from "h1:104,h2:104" or ["h1:104", "h2:104"] (without repeats); ValueError
    when one is not host:port or none is given."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    found = tuple(dict.fromkeys(parse_address(p) for p in parts if p.strip()))
    if not found:
        raise ValueError("no node address given (host:port)")
    return found


class NodeRing:
    """Which node each new association goes to. Without a key, the next node in turn; with
    a key (e.g. a Study Instance UID), the node the key hashes to, so that everything of
    one key starts on the same node. Nodes that failed in the last `quarantine` seconds
    come after the live ones, the one failed longest ago first. Thread-safe."""

    def __init__(
        self,
        nodes: Sequence[Address],
        quarantine: float = DEFAULT_QUARANTINE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not nodes:
            raise ValueError("a client needs at least one node")
        self.nodes = tuple(nodes)
        self.quarantine = quarantine
        self._clock = clock
        self._turn = 0
        self._failed: dict[Address, float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.nodes)

    def order(self, key: str | None = None) -> list[Address]:
        """Every node, in the order to try them for a new association."""
        with self._lock:
            now = self._clock()
            live = [n for n in self.nodes if now - self._failed.get(n, -1e18) >= self.quarantine]
            resting = sorted((n for n in self.nodes if n not in live), key=self._failed.__getitem__)
            if key is not None:  # the key's node, then the ring from there
                start = zlib.crc32(key.encode()) % len(self.nodes)
                turn = [*self.nodes[start:], *self.nodes[:start]]
                return [*(n for n in turn if n in live), *resting]
            if not live:
                return resting
            start = self._turn % len(live)
            self._turn += 1
            return [*live[start:], *live[:start], *resting]

    def failed(self, node: Address) -> None:
        """The node failed now: it rests for the quarantine."""
        with self._lock:
            self._failed[node] = self._clock()

    def succeeded(self, node: Address) -> None:
        """The node answered: it is live again."""
        with self._lock:
            self._failed.pop(node, None)

    def resting(self) -> list[str]:
        """The nodes in quarantine now, as host:port."""
        now = self._clock()
        with self._lock:
            return [format_address(n) for n, t in self._failed.items() if now - t < self.quarantine]
