"""Wake-ups within one process: code that queued work due now rings once its transaction has
committed, and the workers subscribed here look for it at once instead of at their next poll
(other nodes find it at theirs); and the bell a worker's idle threads wait on."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
Listener = Callable[[], None]

_LISTENERS: list[Listener] = []
_LOCK = threading.Lock()


def subscribe(listener: Listener) -> None:
    """Call `listener` (quick, never blocking) on every ring."""
    with _LOCK:
        if listener not in _LISTENERS:
            _LISTENERS.append(listener)


def unsubscribe(listener: Listener) -> None:
    """Stop calling `listener`."""
    with _LOCK:
        if listener in _LISTENERS:
            _LISTENERS.remove(listener)


def ring() -> None:
    """Work is due now (call after the transaction that queued it committed)."""
    with _LOCK:
        listeners = list(_LISTENERS)
    for listener in listeners:
        try:
            listener()
        except Exception:
            log.exception("work queue wake-up listener failed")


class Bell:
    """Wakes a pool's idle threads one at a time; a ring while none waits is kept for the next."""

    def __init__(self, limit: int) -> None:
        self._cond = threading.Condition()
        self._rings = 0
        self._limit = max(limit, 1)

    def ring(self) -> None:
        """Wake one waiting thread (or let the next one to wait go on at once)."""
        with self._cond:
            self._rings = min(self._rings + 1, self._limit)
            self._cond.notify()

    def ring_all(self) -> None:
        """Wake every waiting thread."""
        with self._cond:
            self._rings = self._limit
            self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        """Until rung or `timeout` seconds passed."""
        with self._cond:
            if not self._rings:
                self._cond.wait(timeout)
            self._rings = max(self._rings - 1, 0)
