"""Open an association to a peer: separate timeouts, our PDU size, TCP_NODELAY, clear errors.

pynetdicom reports every failed association request the same way (an association that is
not established) and logs the reason. Here the reason is told apart and raised: the TCP
connect's own error (kept by a socket that remembers it), the A-ASSOCIATE-RJ's result,
source and reason (also when pynetdicom left it unread because the peer closed the
connection right after it), an ACSE timeout (no answer for the whole wait) or the peer's
abort. Over TLS, a failed TCP connect and a failed handshake are one error (the reason is
in pynetdicom's log lines).

While waiting for a DIMSE response, pynetdicom notices neither the peer's A-ABORT nor a
closed connection until its DIMSE timeout ends; an association opened here looks at both
every `SLICE` seconds of the wait, and remembers whether a wait ran out.
"""

from __future__ import annotations

import queue
import socket
import ssl
import time
from collections.abc import Sequence
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import AddressInformation, AssociationSocket

from hounsfield.dicomnet.contexts import MAX_CONTEXTS
from hounsfield.dicomnet.nodelay import set_nodelay
from hounsfield.dicomnet.peer import Peer, Timeouts
from hounsfield.dicomnet.tls import client_context
from hounsfield.errors import (
    AssociationAborted,
    AssociationRejected,
    PeerError,
    PeerTimeout,
    PeerUnreachable,
    TooManyContexts,
)
from hounsfield.settings import Settings

SLICE = 0.05  # seconds between looks at the association while waiting for a response
_TIMED_OUT = "_hounsfield_dimse_timed_out"
_OPENED = "_hounsfield_connection_opened"


class _TracedSocket(socket.socket):
    """A TCP socket that remembers why its connect failed."""

    connect_error: OSError | None = None
    connected = False

    def connect(self, address: Any) -> None:
        try:
            super().connect(address)
        except OSError as exc:
            self.connect_error = exc
            raise
        self.connected = True


class _Socket(AssociationSocket):
    """pynetdicom's association socket, on a `_TracedSocket` (set up as pynetdicom does).

    Over TLS a readable socket may hold no data: a TLS 1.3 server sends session tickets
    after the handshake. pynetdicom would then block reading a PDU that never comes instead
    of sending its association request; here readiness reads one byte without blocking
    (kept for the next `recv`), so records without data leave the socket not ready."""

    traced: _TracedSocket | None = None
    _held = b""

    @property
    def ready(self) -> bool:
        if self._held:
            return True
        ready = bool(super().ready)
        sock = self.socket
        if not ready or not isinstance(sock, ssl.SSLSocket) or sock.pending():
            return ready
        return self._peek(sock)

    def _peek(self, sock: ssl.SSLSocket) -> bool:
        """Whether a readable TLS socket holds data (or was closed)."""
        timeout = sock.gettimeout()
        try:
            sock.setblocking(False)
            self._held = sock.recv(1)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError:
            return True  # the read that follows meets the error
        finally:
            sock.settimeout(timeout)
        return True

    def recv(self, nr_bytes: int) -> bytearray:
        held, self._held = self._held, b""
        if not held:
            return super().recv(nr_bytes)
        if nr_bytes <= len(held):
            self._held = held[nr_bytes:]
            return bytearray(held[:nr_bytes])
        return bytearray(held) + super().recv(nr_bytes - len(held))

    def _create_socket(self, address: AddressInformation) -> socket.socket:
        family = socket.AF_INET if address.is_ipv4 else socket.AF_INET6
        sock = _TracedSocket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.assoc.network_timeout is not None:
            sock.settimeout(self.assoc.network_timeout)
        sock.bind(address.as_tuple)
        self._is_connected = False
        self.traced = sock
        return sock


class _RequestorAE(AE):
    """An AE whose associations use `_Socket`."""

    def _create_socket(
        self, assoc: Association, address: AddressInformation, tls_args: Any
    ) -> AssociationSocket:
        sock = _Socket(assoc, address=address)
        sock.tls_args = tls_args
        return sock


def request(
    peer: Peer,
    settings: Settings,
    contexts: Sequence[PresentationContext],
    *,
    ext_neg: Sequence[Any] = (),
    handlers: Sequence[Any] = (),
    calling_ae: str | None = None,
) -> tuple[Association, Timeouts]:
    """An established association to `peer` proposing `contexts` (as `calling_ae`, by default
    the node's AE title), or a PeerError."""
    if len(contexts) > MAX_CONTEXTS:
        raise TooManyContexts(
            f"{len(contexts)} presentation contexts proposed to {peer}; at most {MAX_CONTEXTS}"
        )
    timeouts = Timeouts.of(peer, settings)
    started = time.monotonic()
    ae = _RequestorAE(ae_title=calling_ae or settings.ae_title)
    ae.connection_timeout = timeouts.connect
    ae.acse_timeout = timeouts.association
    ae.dimse_timeout = timeouts.dimse
    ae.network_timeout = timeouts.idle
    ae.maximum_pdu_size = settings.max_pdu
    try:
        tls_args = (client_context(settings), peer.host) if peer.tls else None
    except (OSError, ValueError) as exc:
        raise PeerUnreachable(f"{peer}: cannot set up TLS: {exc}") from exc
    try:
        assoc = ae.associate(
            peer.host,
            peer.port,
            contexts=list(contexts),
            ae_title=peer.ae_title,
            max_pdu=settings.max_pdu,
            ext_neg=list(ext_neg),
            tls_args=tls_args,
            evt_handlers=[(evt.EVT_CONN_OPEN, _opened), *handlers],
        )
    except OSError as exc:  # the host name does not resolve
        raise PeerUnreachable(f"{peer}: cannot resolve {peer.host!r}: {exc}") from exc
    if not assoc.is_established:
        raise refusal(assoc, peer, timeouts, len(contexts), time.monotonic() - started)
    _watch(assoc)
    return assoc, timeouts


def _opened(event: Any) -> None:
    """The connection is up (over TLS: the handshake is done too)."""
    setattr(event.assoc, _OPENED, True)
    set_nodelay(event)


def refusal(
    assoc: Association, peer: Peer, timeouts: Timeouts, proposed: int, waited: float
) -> PeerError:
    """Why an association request did not end established (`waited`: seconds it took)."""
    sock = assoc.dul.socket
    traced = getattr(sock, "traced", None)
    error = traced.connect_error if traced is not None else None
    if isinstance(error, TimeoutError):
        return PeerTimeout(f"{peer}: no TCP connection within {timeouts.connect:g} s", "connect")
    if error is not None:
        return PeerUnreachable(f"{peer}: cannot connect: {error.strerror or error}")
    if traced is not None and not traced.connected and not sock.tls_args:
        return PeerUnreachable(f"{peer}: cannot connect")
    if sock.tls_args and not getattr(assoc, _OPENED, False):
        return PeerUnreachable(f"{peer}: cannot connect, or the TLS handshake failed")
    # pynetdicom gives up without reading the answer when the peer closed the connection
    # right after it (a reject, then close): the answer then waits, unread, in the queue.
    unread = list(assoc.dul.to_user_queue.queue)
    answer = assoc.acceptor.primitive or next(
        (p for p in unread if isinstance(p, A_ASSOCIATE)), None
    )
    if answer is not None and answer.result in (1, 2):
        return AssociationRejected(
            f"{peer} rejected the association: result {answer.result} ({answer.result_str}), "
            f"source {answer.result_source} ({answer.source_str}), "
            f"reason {answer.diagnostic} ({answer.reason_str})",
            answer.result,
            answer.result_source,
            answer.diagnostic,
        )
    if answer is not None and answer.result == 0:
        return AssociationRejected(
            f"{peer} accepted none of the {proposed} proposed presentation contexts"
        )
    aborted = assoc.is_aborted and not getattr(assoc, "_sent_abort", False)
    if not aborted and not unread and waited >= timeouts.association * 0.9:
        return PeerTimeout(
            f"{peer}: no answer to the association request within {timeouts.association:g} s",
            "ACSE",
        )
    return AssociationAborted(f"{peer} aborted or closed the connection during the request")


def ended(assoc: Association) -> bool:
    """Whether the peer aborted or the connection is gone."""
    return bool(assoc.is_aborted or assoc.acse.is_aborted() or not assoc.dul.is_alive())


def timed_out(assoc: Association) -> bool:
    """Whether a DIMSE wait on this association ran out."""
    return bool(getattr(assoc, _TIMED_OUT, False))


def _watch(assoc: Association) -> None:
    """Wait for DIMSE messages in slices, giving up early when the association ended."""
    dimse = assoc.dimse

    def get_msg(block: bool = False) -> Any:
        if not block:
            try:
                return dimse.msg_queue.get(block=False)
            except queue.Empty:
                return None, None
        limit = assoc.dimse_timeout
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            wait = SLICE if deadline is None else min(SLICE, deadline - time.monotonic())
            if wait <= 0:
                setattr(assoc, _TIMED_OUT, True)
                return None, None
            try:
                return dimse.msg_queue.get(timeout=wait)
            except queue.Empty:
                if ended(assoc):
                    return None, None

    dimse.get_msg = get_msg  # type: ignore[method-assign]
