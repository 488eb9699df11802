"""Failed logins slow a guesser down: after `max_failures` for one user name from one address
(or ten times that from one address, whatever the names) within the lock time, that name and
address (or that address) may not log in until the lock time has passed. Users of other
addresses are not locked out, so a guesser cannot lock a radiologist out of the reading room.

The failures are rows in the database (`login_failure`), so every HTTP process of a node and
every node of a cluster counts the same ones; what is counted is stored as a SHA-256 only.
"""

from __future__ import annotations

import hashlib
import time

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from hounsfield.db import engine as db
from hounsfield.db.tables import login_failure

ADDRESS_FACTOR = 10  # an address trying many names: ten times the failures of one name


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class LoginThrottle:
    """Counts failed logins per (user name, address) and per address, in the database."""

    def __init__(self, engine: Engine, max_failures: int, lock_seconds: float) -> None:
        self.engine = engine
        self.max_failures, self.lock_seconds = max_failures, lock_seconds

    def _keys(self, name: str, host: str) -> tuple[tuple[str, int], ...]:
        return (
            (_hash(f"pair:{name}\0{host}"), self.max_failures),
            (_hash(f"host:{host}"), self.max_failures * ADDRESS_FACTOR),
        )

    def locked_for(self, name: str, host: str) -> float:
        """Seconds until `name` from `host` may try again (0: now)."""
        now = time.time()
        waits = [0.0]
        with db.read(self.engine) as conn:
            for key, limit in self._keys(name, host):
                recent = conn.scalars(
                    select(login_failure.c.failed_at)
                    .where(login_failure.c.key_hash == key)
                    .where(login_failure.c.failed_at > now - self.lock_seconds)
                    .order_by(login_failure.c.failed_at.desc())
                    .limit(limit)
                ).all()
                if len(recent) >= limit:
                    waits.append(self.lock_seconds - (now - recent[-1]))
        return max(waits)

    def failed(self, name: str, host: str) -> None:
        """Count one failed login (and forget the failures older than the lock time)."""
        now = time.time()
        rows = [{"key_hash": key, "failed_at": now} for key, _ in self._keys(name, host)]
        with db.write(self.engine) as conn:
            conn.execute(insert(login_failure), rows)
            conn.execute(
                delete(login_failure).where(login_failure.c.failed_at < now - self.lock_seconds)
            )

    def succeeded(self, name: str, host: str) -> None:
        """A right password clears the count of that name from that address."""
        pair = self._keys(name, host)[0][0]
        with db.write(self.engine) as conn:
            conn.execute(delete(login_failure).where(login_failure.c.key_hash == pair))
