"""The association reactor's pause checkpoint, told when the reactor stops, able to keep it
stopped between a sender's requests.

pynetdicom pauses the reactor before each request it sends (so that it does not take the
response) by clearing an Event and polling a flag every 0.1 ms until the reactor has stopped,
then sets the Event again: ~0.3 ms per C-STORE. This checkpoint keeps pynetdicom's Event
interface (`set`, `clear`, `wait`, `is_set`) and adds:

- `pause`: stop the reactor and return as soon as it has stopped (a Condition, no polling);
  at once when it is already stopped;
- `linger`: the sender is done, but the reactor stays stopped for up to `seconds` (or until
  something arrives for it: a request, a release or abort, the end of the connection), so
  that consecutive requests on one link pay no pause at all.

The reactor stops in `wait`, which also keeps pynetdicom's `_is_paused` flag, under the same
lock: a sender that clears the checkpoint just after the reactor was let go can no longer
see a stale "paused" while the reactor runs on. `_is_paused` itself (see `IS_PAUSED`) reads
"paused" whenever the reactor is stopped here, whatever was last written to it: pynetdicom
serves an N-EVENT-REPORT request on a thread of its own that writes False when it is done,
and a sender polling for the stopped reactor then waited forever.
"""

from __future__ import annotations

import threading
import time
from typing import Any

TICK = 0.02  # how often a stopped reactor looks at its linger deadline


class Checkpoint:
    """pynetdicom's `_reactor_checkpoint` (set: the reactor may run), with `pause`/`linger`."""

    def __init__(self, assoc: Any, wake: threading.Event) -> None:
        self._assoc, self._wake = assoc, wake
        self._cond = threading.Condition(threading.Lock())
        self._open = True
        self._parked = False
        self._until = 0.0  # linger deadline (monotonic), 0: not lingering
        self._turn = 0  # bumped to let a lingering reactor run once before a pause
        self._parked_turn = -1  # the turn the reactor stopped in

    def is_set(self) -> bool:
        """Whether the reactor may run."""
        return self._open

    def set(self) -> None:
        """Let the reactor run."""
        with self._cond:
            self._open, self._until = True, 0.0
            self._cond.notify_all()
        self._wake.set()

    def clear(self) -> None:
        """Ask the reactor to stop at its checkpoint."""
        with self._cond:
            self._open, self._until = False, 0.0
            if self._parked:
                return
        self._wake.set()

    def wait(self, timeout: float | None = None) -> bool:
        """The reactor stops here while the checkpoint is cleared or lingering."""
        with self._cond:
            self._parked = self._assoc._is_paused = True
            self._parked_turn = turn = self._turn
            self._cond.notify_all()
            while not self._open and turn == self._turn:
                if self._until and (time.monotonic() >= self._until or self._pending()):
                    self._open, self._until = True, 0.0
                    break
                self._cond.wait(TICK)
            self._parked = self._assoc._is_paused = False
        return True

    def pause(self) -> None:
        """Stop the reactor; return once it is stopped (or has ended)."""
        with self._cond:
            lingering = self._until != 0.0
            self._open, self._until = False, 0.0
            if self._parked and not (lingering and self._pending()):
                return
            if self._parked:  # something waits for the reactor: it runs once first
                self._turn += 1
                self._cond.notify_all()
        self._wake.set()
        with self._cond:
            turn = self._turn
            while not (self._parked and self._parked_turn == turn) and self._reactor_alive():
                self._cond.wait(TICK)

    def linger(self, seconds: float) -> None:
        """A sender is done: the reactor may stay stopped up to `seconds` for the next one."""
        with self._cond:
            if self._open:
                return
            if self._pending():
                self._open = True
                self._cond.notify_all()
            else:
                self._until = time.monotonic() + seconds
                return
        self._wake.set()

    def _pending(self) -> bool:
        """Whether something waits for the reactor (called with the lock held)."""
        assoc = self._assoc
        return bool(
            assoc.dimse.msg_queue.queue or assoc.dul.to_user_queue.queue or not assoc.dul.is_alive()
        )

    def _reactor_alive(self) -> bool:
        return bool(self._assoc.is_alive()) and not self._assoc._kill


def _get_paused(assoc: Any) -> bool:
    checkpoint = assoc.__dict__.get("_reactor_checkpoint")
    return bool(assoc.__dict__.get(_PAUSED)) or bool(getattr(checkpoint, "_parked", False))


def _set_paused(assoc: Any, value: bool) -> None:
    assoc.__dict__[_PAUSED] = value


_PAUSED = "_hounsfield_paused"
IS_PAUSED = property(_get_paused, _set_paused)
"""pynetdicom's `Association._is_paused`: what was written, or True while stopped here."""
