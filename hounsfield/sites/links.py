"""Links to forwarding destinations: associations kept open briefly for the next study, and
a rate cap per destination.

A link is taken for one study and given back afterwards; another study to the same
destination within `linger` seconds reuses it when the peer accepted what that study needs.
Links idle longer are released by `reap`, which runs when the linger time is over (and
whenever the pool is used, and on the workers' heartbeat). The pool belongs to one process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from hounsfield.dicomnet.contexts import LITTLE_ENDIAN
from hounsfield.dicomnet.scu import PeerAssociation
from hounsfield.errors import PeerError

log = logging.getLogger(__name__)


@dataclass
class _Idle:
    link: PeerAssociation
    since: float


class LinkPool:
    """Idle associations by (destination, calling AE title)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str], list[_Idle]] = {}
        self._lock = threading.Lock()

    def take(
        self, destination: str, calling: str, needs: Iterable[tuple[str, str]]
    ) -> PeerAssociation | None:
        """An idle established link that can carry every (SOP Class, transfer syntax) pair
        of `needs` (as stored, or in a little endian syntax), or None."""
        wanted = set(needs)
        self.reap()
        with self._lock:
            idle = self._idle.get((destination, calling), [])
            for entry in list(idle):
                idle.remove(entry)
                if entry.link.assoc.is_established and _covers(entry.link, wanted):
                    return entry.link
                _close(entry.link)
        return None

    def give(self, destination: str, calling: str, link: PeerAssociation, linger: float) -> None:
        """Keep `link` for `linger` seconds (release it now when 0)."""
        if linger <= 0 or not link.assoc.is_established:
            _close(link)
            return
        with self._lock:
            self._idle.setdefault((destination, calling), []).append(
                _Idle(link, time.monotonic() + linger)
            )
        self.reap()
        timer = threading.Timer(linger + 0.1, self.reap)  # released on time if not reused
        timer.daemon = True
        timer.start()

    def reap(self) -> int:
        """Release links whose linger time is over; how many."""
        current = time.monotonic()
        stale: list[PeerAssociation] = []
        with self._lock:
            for key, idle in list(self._idle.items()):
                keep = [e for e in idle if e.since > current and e.link.assoc.is_established]
                stale += [e.link for e in idle if e not in keep]
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
        for link in stale:
            _close(link)
        return len(stale)

    def close_all(self) -> None:
        """Release every idle link (the node is stopping)."""
        with self._lock:
            everything = [e.link for idle in self._idle.values() for e in idle]
            self._idle.clear()
        for link in everything:
            _close(link)


def _covers(link: PeerAssociation, wanted: set[tuple[str, str]]) -> bool:
    for sop_class, syntax in wanted:
        accepted = link.accepted(sop_class)
        if syntax not in accepted and not accepted & set(LITTLE_ENDIAN):
            return False
    return True


def _close(link: PeerAssociation) -> None:
    try:
        link.release()
    except (PeerError, OSError, RuntimeError) as exc:
        log.debug("releasing an idle link to %s: %s", link.peer, exc)


class RateCap:
    """At most `kbps` kilobits per second over time (a token bucket holding one second)."""

    def __init__(self, kbps: int) -> None:
        self.rate = kbps * 1000 / 8  # bytes per second
        self._allowance = self.rate
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def spend(self, size: int) -> float:
        """Account for `size` bytes about to be sent and wait as long as the cap needs;
        the seconds waited."""
        with self._lock:
            current = time.monotonic()
            self._allowance = min(self.rate, self._allowance + (current - self._at) * self.rate)
            self._at = current
            self._allowance -= size
            wait = -self._allowance / self.rate if self._allowance < 0 else 0.0
        if wait > 0:
            time.sleep(wait)
        return wait


POOL = LinkPool()
_CAPS: dict[tuple[str, int], RateCap] = {}
_CAPS_LOCK = threading.Lock()


def rate_cap(destination: str, kbps: int | None) -> RateCap | None:
    """The process's rate cap for a destination (shared by all its links), or None."""
    if not kbps:
        return None
    with _CAPS_LOCK:
        return _CAPS.setdefault((destination, kbps), RateCap(kbps))
