"""TLS for DICOM connections (BCP 195: TLS 1.2 and newer, modern ciphers) in both directions.

The node's TLS listener accepts plain TCP connections and does the TLS handshake on the
thread that serves the connection, bounded by the association timeout, so a client that
never finishes its handshake holds up nobody else. With extra DIMSE processes the raw
connection is handed over like any other and the receiving process does the handshake: it
knows a connection is TLS by its local port, the node's TLS port. A failed handshake (an
untrusted client certificate, an old protocol, plain DICOM on the TLS port) is logged and
the connection closed.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import ssl
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from hounsfield.dicomnet.handoff import DispatchingServer, HandedServer
from hounsfield.settings import Settings

log = logging.getLogger(__name__)


def _harden(context: ssl.SSLContext, ciphers: str) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return context


def harden(context: ssl.SSLContext, settings: Settings) -> ssl.SSLContext:
    """`context` limited to TLS 1.2 and newer and the configured ciphers."""
    return _harden(context, settings.tls_ciphers)


def _need_pair(settings: Settings) -> tuple[Path, Path]:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        raise ValueError("TLS needs tls_cert_file and tls_key_file")
    return settings.tls_cert_file, settings.tls_key_file


def server_context(settings: Settings) -> ssl.SSLContext:
    """The context the node's TLS listener serves with: its certificate and key, and, with
    `tls_ca_file`, a client certificate signed by that CA required from every caller."""
    cert, key = _need_pair(settings)
    context = harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), settings)
    context.load_cert_chain(cert, key)
    if settings.tls_ca_file is not None:
        context.load_verify_locations(cafile=settings.tls_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def https_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for HTTPS on the HTTP port (`http_tls`): the node's certificate and
    key; with `tls_ca_file`, client certificates signed by that CA are checked when offered
    (not required: browsers and API clients log in)."""
    if not settings.http_tls:
        return {}
    cert, key = _need_pair(settings)
    options: dict[str, Any] = {
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
        "ssl_ciphers": settings.tls_ciphers,
    }
    if settings.tls_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.tls_ca_file)
        options["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
    return options


def _stamp(path: Path | None) -> tuple[str, float] | None:
    if path is None:
        return None
    try:
        return str(path), os.stat(path).st_mtime
    except OSError:
        return str(path), -1.0


def client_context(settings: Settings) -> ssl.SSLContext:
    """The context for associations and HTTPS requests to peers: the peer's certificate
    checked against `tls_ca_file` (the system's CAs without it), the node's certificate
    offered as client certificate when configured. Re-read when a file changes."""
    key = (
        _stamp(settings.tls_ca_file),
        _stamp(settings.tls_cert_file),
        _stamp(settings.tls_key_file),
        settings.tls_ciphers,
        settings.tls_check_hostname,
    )
    return _client(key, settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file)


@lru_cache(maxsize=4)
def _client(key: Any, ca: Path | None, cert: Path | None, private: Path | None) -> ssl.SSLContext:
    _ca, _cert, _private, ciphers, check_hostname = key
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), ciphers)
    context.check_hostname = check_hostname
    if ca is not None:
        context.load_verify_locations(cafile=ca)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert is not None and private is not None:
        context.load_cert_chain(cert, private)
    return context


class _Handshaking:
    """Do the server-side TLS handshake on the connection's own thread before pynetdicom
    reads from it (for connections `is_tls` picks)."""

    tls: ssl.SSLContext | None = None
    handshake_timeout: float = 30.0
    tls_ports: frozenset[int] | None = None  # only connections to these local ports; None: all
    # a connection ended in its handshake: (client address, why)
    on_refused: Callable[[Any, str], None] | None = None

    def is_tls(self, request: socket.socket) -> bool:
        """Whether this connection speaks TLS."""
        if self.tls is None:
            return False
        if self.tls_ports is None:
            return True
        try:
            return int(request.getsockname()[1]) in self.tls_ports
        except OSError:
            return False

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        if isinstance(request, socket.socket) and self.is_tls(request):
            wrapped = handshake(self.tls, request, self.handshake_timeout, client_address)
            if isinstance(wrapped, str):
                if self.on_refused is not None:
                    self.on_refused(client_address, wrapped)
                return
            request = wrapped
        super().process_request_thread(request, client_address)  # type: ignore[misc]


def handshake(
    context: Any, request: socket.socket, timeout: float, client_address: Any
) -> ssl.SSLSocket | str:
    """`request` after a server-side handshake within `timeout` seconds in all (not per
    read: a client sending a byte a second kept its thread), or why it failed (logged,
    closed)."""
    current: socket.socket = request
    deadline = time.monotonic() + timeout
    try:
        request.setblocking(False)
        wrapped = context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        current = wrapped
        while True:
            try:
                wrapped.do_handshake()
                break
            except ssl.SSLWantReadError:
                _wait(wrapped, select.POLLIN, deadline)
            except ssl.SSLWantWriteError:
                _wait(wrapped, select.POLLOUT, deadline)
        wrapped.settimeout(None)
        return wrapped  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        log.warning("TLS handshake with %s failed: %s", _host(client_address), exc)
        current.close()
        return f"TLS handshake failed: {exc}"


def _wait(sock: socket.socket, event: int, deadline: float) -> None:
    """Until `sock` is ready for `event`; TimeoutError at `deadline`."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the TLS handshake took longer than the association timeout")
    poller = select.poll()  # no FD_SETSIZE limit
    poller.register(sock, event)
    poller.poll(left * 1000)


def _host(client_address: Any) -> str:
    try:
        return f"{client_address[0]}:{client_address[1]}"
    except (TypeError, IndexError):
        return str(client_address)


class TlsListener(_Handshaking, DispatchingServer):
    """The TLS listener: accepts, maybe hands over, then handshakes where it is served."""


class TlsHandedServer(_Handshaking, HandedServer):
    """Serves handed-over connections; those to the TLS port get their handshake first."""
