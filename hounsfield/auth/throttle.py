"""Failed logins slow a guesser down: after `max_failures` for one user name from one address
(or ten times that from one address, whatever the names) within the lock time, that name and
address (or that address) may not log in until the lock time has passed. Users of other
addresses are not locked out, so a guesser cannot lock a radiologist out of the reading room."""

from __future__ import annotations

import threading
import time
from collections import deque

ADDRESS_FACTOR = 10  # an address trying many names: ten times the failures of one name


class LoginThrottle:
    """Counts failed logins per (user name, address) and per address (in this process)."""

    def __init__(self, max_failures: int, lock_seconds: float) -> None:
        self.max_failures, self.lock_seconds = max_failures, lock_seconds
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _keys(self, name: str, host: str) -> tuple[tuple[str, int], ...]:
        return (
            (f"pair:{name}\0{host}", self.max_failures),
            (f"host:{host}", self.max_failures * ADDRESS_FACTOR),
        )

    def _recent(self, key: str, now: float) -> deque[float]:
        found = self._failures.setdefault(key, deque())
        while found and now - found[0] > self.lock_seconds:
            found.popleft()
        return found

    def locked_for(self, name: str, host: str) -> float:
        """Seconds until `name` from `host` may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            waits = [
                self.lock_seconds - (now - recent[-limit])
                for key, limit in self._keys(name, host)
                if len(recent := self._recent(key, now)) >= limit
            ]
        return max(waits, default=0.0)

    def failed(self, name: str, host: str) -> None:
        """Count one failed login."""
        now = time.monotonic()
        with self._lock:
            for key, _ in self._keys(name, host):
                self._recent(key, now).append(now)
            if len(self._failures) > 10_000:  # forget the quiet ones
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]

    def succeeded(self, name: str, host: str) -> None:
        """A right password clears the count of that name from that address."""
        with self._lock:
            self._failures.pop(self._keys(name, host)[0][0], None)
