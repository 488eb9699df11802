"""pynetdicom's two reactor loops wait on events instead of polling.

pynetdicom 3 runs two threads per association that poll: the DUL thread sleeps ~1 ms
whenever its socket has nothing to read, and the association thread sleeps 1 ms per loop
before looking for a decoded message. Each idle association cost ~12 % of a core here, and
with several associations the sleepers fought over the GIL (bench/RESULTS.md, "Notes").

Installed once, process-wide, by importing this module:

- the DUL waits in `poll` on its socket and on a wake-up socket that is written when a
  primitive or an event is queued for it while it waits there (not while it is busy: a
  write costs a system call and, under GIL contention, a few hundred µs), or it is told to
  stop;
- the association's reactor waits on an Event set whenever the DUL hands it a message or a
  primitive, a sender pauses or resumes it, or the DUL ends; it stops for senders at a
  `checkpoint.Checkpoint`.

Both still wake every `TICK` seconds to look at their timers, as before. The loops are
pynetdicom's own (3.0), with only the sleep replaced; the version is pinned to 3.0.x.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from pynetdicom import association, dul
from pynetdicom.association import Association
from pynetdicom.pdu import A_ABORT_RQ

from hounsfield.dicomnet.checkpoint import IS_PAUSED, Checkpoint

log = logging.getLogger(__name__)
TICK = 0.02  # seconds between timer checks when nothing happens
_SPIN_LIMIT = 2  # readable-socket wake-ups in a row with nothing read: fall back to sleeping
_READABLE = select.POLLIN | select.POLLPRI
PDU_FLOOR = 1 << 20  # bytes every PDU may have, whatever the maximum PDU size
PDU_ROOM = 1 << 16


class _WakingQueue(queue.Queue):  # type: ignore[type-arg]
    """A queue that calls `wake` after every put."""

    def __init__(self, wake: Callable[[], None]) -> None:
        super().__init__()
        self._wake = wake

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._wake()


class EventedDUL(dul.DULServiceProvider):
    """pynetdicom's DUL provider, waiting in `poll` instead of sleeping."""

    def __init__(self, assoc: Association) -> None:
        super().__init__(assoc)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selecting = False  # in (or about to enter) `poll`
        self._woken = False  # a wake-up byte was written and not yet read
        self.event_queue = _WakingQueue(self.wake)
        self.to_provider_queue = _WakingQueue(self.wake)

    def wake(self) -> None:
        """Interrupt the reactor's wait, if it waits (the caller queued something first)."""
        if not self._selecting or self._woken:
            return
        self._woken = True
        with contextlib.suppress(OSError):  # full (a wake-up is already pending) or closed
            self._wake_w.send(b"\0")

    def _has_work(self) -> bool:
        return bool(self.to_provider_queue.queue or self.event_queue.queue or self._kill_thread)

    def _force_wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def kill_dul(self) -> None:
        super().kill_dul()
        self._force_wake()

    def stop_dul(self) -> bool:
        if self.state_machine.current_state != "Sta1":
            return False
        self._kill_thread = True
        self._force_wake()
        while self.is_alive() and threading.current_thread() is not self:
            time.sleep(0.0005)
        return True

    def _wait(self, idle_wakes: int) -> int:
        """Block until the socket is readable, a wake-up arrives or TICK passes."""
        if idle_wakes >= _SPIN_LIMIT:
            time.sleep(self._run_loop_delay)
            return idle_wakes
        sock = getattr(self.socket, "socket", None)
        poller = select.poll()  # not select(): no FD_SETSIZE limit on descriptor numbers
        poller.register(self._wake_r, _READABLE)
        self._selecting = True  # before looking at the queues: a put after it wakes us
        try:
            if sock is not None and getattr(self.socket, "_is_connected", False):
                poller.register(sock, _READABLE)
            if self._has_work():
                return 0
            ready = {fd for fd, _mask in poller.poll(TICK * 1000)}
        except (OSError, ValueError):  # the socket was closed meanwhile
            time.sleep(self._run_loop_delay)
            return 0
        finally:
            self._selecting = False
        if self._wake_r.fileno() in ready:
            with contextlib.suppress(OSError):  # drained: nothing more to read
                while self._wake_r.recv(4096):
                    pass
            self._woken = False
            return 0
        return idle_wakes + 1 if ready else 0

    def _read_pdu_data(self) -> None:
        """pynetdicom's read of one PDU, no larger than `_pdu_limit`, which must arrive
        whole within a deadline: the ARTIM timer's time left while the A-ASSOCIATE-RQ is
        awaited, the DIMSE timeout (or the idle timeout when shorter) after that. The
        socket's own timeout restarts with every byte: a peer sending a byte a second held
        the connection for as long as it liked."""
        transport = self.socket
        if transport is None:
            return super()._read_pdu_data()
        transport._pdu_deadline = self._pdu_deadline()  # type: ignore[attr-defined]
        transport._pdu_limit = self._pdu_limit()  # type: ignore[attr-defined]
        try:
            return super()._read_pdu_data()
        finally:
            transport._pdu_deadline = None  # type: ignore[attr-defined]
            transport._pdu_limit = None  # type: ignore[attr-defined]

    def _pdu_limit(self) -> int | None:
        """The most bytes one PDU may announce: the largest P-DATA this side accepts (an
        A-ASSOCIATE-RQ at least PDU_FLOOR) and some room; None when unlimited. A header
        announcing 4 GiB had the reader collect whatever arrived for it."""
        largest = int(getattr(self.assoc.ae, "maximum_pdu_size", 0) or 0)
        return None if largest == 0 else max(largest, PDU_FLOOR) + PDU_ROOM

    def _pdu_deadline(self) -> float | None:
        """When the PDU starting now must have arrived (time.monotonic), or None."""
        if self.state_machine.current_state == "Sta2":
            limit: float | None = self.artim_timer.remaining if self.artim_timer.timeout else None
        else:
            limits = [t for t in (self.assoc.dimse_timeout, self.assoc.network_timeout) if t]
            limit = min(limits) if limits else None
        return None if limit is None else time.monotonic() + max(limit, 0.0)

    def _step(self, sent: bool) -> bool:
        """Send one queued primitive or read one PDU; whether it sent.

        pynetdicom reads only when nothing is queued to send, so a peer's C-CANCEL waited
        behind every response of a C-FIND already queued; after each send a waiting PDU is
        read first."""
        if sent and self._is_transport_event():
            self._idle_timer.restart()
            return False
        if self._process_recv_primitive():
            return True
        if not sent and self._is_transport_event():
            self._idle_timer.restart()
        return False

    def run_reactor(self) -> None:
        """pynetdicom's DUL loop (3.0), waiting in `_wait` where it slept and alternating
        between sending and reading (`_step`)."""
        self._idle_timer.start()
        sleep = False
        idle_wakes = 0
        sent = False
        try:
            while True:
                if not self.assoc._dul_ready.is_set():
                    self.assoc._dul_ready.set()
                    sleep = True
                if sleep:
                    idle_wakes = self._wait(idle_wakes)
                if self._kill_thread:
                    break
                if self.artim_timer.expired:
                    self.event_queue.put("Evt18")
                try:
                    sent = self._step(sent)
                except Exception as exc:
                    log.error("Exception in the DUL reactor, aborting association")
                    log.exception(exc)
                    abort_pdu = A_ABORT_RQ()
                    abort_pdu.source = 0x02
                    abort_pdu.reason_diagnostic = 0x00
                    if self.socket is not None:
                        self.socket.send(abort_pdu.encode())
                    self.assoc.is_aborted = True
                    self.assoc.is_established = False
                    self.assoc._kill = True
                    self._kill_thread = True
                    return
                try:
                    event = self.event_queue.get(block=False)
                except queue.Empty:
                    sleep = True
                    continue
                self.state_machine.do_action(event)
                sleep = False
                idle_wakes = 0
        finally:
            self._wake_r.close()
            self._wake_w.close()
            wake = getattr(self.assoc, "_evented_wake", None)
            if wake is not None:
                wake.set()


_original_init = Association.__init__


def _init(self: Association, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    wake = threading.Event()
    self._evented_wake = wake  # type: ignore[attr-defined]
    self._reactor_checkpoint = Checkpoint(self, wake)  # type: ignore[assignment]
    self.dimse.msg_queue = _WakingQueue(wake.set)
    self.dul.to_user_queue = _WakingQueue(wake.set)


def _run_reactor(self: Association) -> None:
    """pynetdicom's acceptor reactor loop (3.0), waiting on an Event where it slept."""
    wake: threading.Event = self._evented_wake  # type: ignore[attr-defined]
    self._is_paused = False
    while not self._kill:
        wake.wait(TICK)
        wake.clear()
        self._reactor_checkpoint.wait()  # keeps `_is_paused`
        # Only a request is the reactor's to serve: a response belongs to the thread that
        # sent the request, even when it reaches the queue before that thread pauses the
        # reactor (pynetdicom's handshake leaves that window; it lost C-FIND responses).
        context_id, msg = self.dimse.peek_msg()
        if msg and getattr(msg, "MessageIDBeingRespondedTo", None) is None:
            self.dimse.get_msg(block=False)
            self._serve_request(msg, context_id)
        if self.is_established and self.acse.is_release_requested():
            self.acse.send_release(is_response=True)
            log.info("Association Released")
            self.is_released = True
            self.is_established = False
            association.evt.trigger(self, association.evt.EVT_RELEASED, {})
            self.kill()
            return
        if self.acse.is_aborted():
            log.info("Association Aborted")
            self.dul.receive_pdu(wait=False)
            self.is_aborted = True
            self.is_established = False
            association.evt.trigger(self, association.evt.EVT_ABORTED, {})
            self.kill()
            return
        if not self.dul.is_alive():
            self.kill()
            return
        if self.dul.idle_timer_expired():
            log.error("Network timeout reached")
            if self.network_timeout_response == "A-RELEASE":
                self._reactor_checkpoint.wait()
                self._is_paused = True  # `release` waits for it
                self.release()
                self._is_paused = False
            else:
                self.abort()
            self.kill()
            return


def install() -> None:
    """Replace the polling loops (idempotent)."""
    if association.DULServiceProvider is EventedDUL:
        return
    association.DULServiceProvider = EventedDUL  # type: ignore[misc]
    Association._is_paused = IS_PAUSED  # type: ignore[assignment]
    Association.__init__ = _init  # type: ignore[method-assign]
    Association._run_reactor = _run_reactor  # type: ignore[method-assign]
