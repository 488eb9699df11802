"""Audit messages to a syslog collector: RFC 5424 messages over TLS (RFC 5425, octet
counting), TCP, or UDP (RFC 5426), sent from a thread of their own with reconnects."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from hounsfield.audit.events import AuditEvent
from hounsfield.audit.message import audit_message

log = logging.getLogger(__name__)

# <PRI> = facility 10 (security/authorization, RFC 5424 6.2.1) * 8 + severity
FACILITY = 10
NOTICE, WARNING = 5, 4
QUEUED_AT_MOST = 10_000
RETRY_SECONDS = 5.0
APP_NAME = "hounsfield"
MSG_ID = "IHE+RFC-3881"  # as DICOM PS3.15 A.5.1 and IHE ATNA name it


def frame(event: AuditEvent, hostname: str, source_id: str) -> bytes:
    """One RFC 5424 message holding the event's DICOM audit message."""
    severity = NOTICE if event.outcome == 0 else WARNING
    when = (event.created_at or datetime.now(UTC)).astimezone(UTC)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    head = f"<{FACILITY * 8 + severity}>1 {stamp} {hostname or '-'} {APP_NAME} - {MSG_ID} - "
    return head.encode() + b"\xef\xbb\xbf" + audit_message(event, source_id, hostname)


class SyslogSender:
    """Sends audit messages to `url` (tls://host:6514, tcp://host:514 or udp://host:514),
    keeping up to QUEUED_AT_MOST of them while the collector is away."""

    def __init__(
        self,
        url: str,
        source_id: str,
        *,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("tls", "tcp", "udp") or not parts.hostname:
            raise ValueError(f"audit syslog {url!r}: use tls://, tcp:// or udp://host:port")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (6514 if parts.scheme == "tls" else 514)
        self.source_id, self.hostname = source_id, socket.gethostname()
        self._context: ssl.SSLContext | None = None
        if self.scheme == "tls":
            ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if cert_file:
                ctx.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
            self._context = ctx
        self._queue: deque[bytes] = deque(maxlen=QUEUED_AT_MOST)
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._stopped = False
        self.sent = 0
        self._thread = threading.Thread(target=self._loop, name="audit-syslog", daemon=True)
        self._thread.start()

    def __call__(self, events: Sequence[AuditEvent]) -> None:
        with self._cond:
            for e in events:
                self._queue.append(frame(e, self.hostname, self.source_id))
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if not self._queue:
                    return
                message = self._queue[0]
            try:
                self._send(message)
            except OSError as exc:
                log.warning("audit syslog %s:%d: %s", self.host, self.port, exc)
                self._drop_connection()
                if self._stopped:
                    return
                time.sleep(RETRY_SECONDS)
                continue
            with self._cond:
                if self._queue and self._queue[0] is message:
                    self._queue.popleft()
            self.sent += 1

    def _send(self, message: bytes) -> None:
        if self.scheme == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.sendto(message, (self.host, self.port))
            return
        if self._sock is None:
            raw = socket.create_connection((self.host, self.port), timeout=10)
            if self._context is not None:
                raw = self._context.wrap_socket(raw, server_hostname=self.host)
            self._sock = raw
        self._sock.sendall(str(len(message)).encode() + b" " + message)

    def _drop_connection(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def close(self, wait: float = 5.0) -> None:
        """Send what is queued (for up to `wait` seconds), then stop."""
        deadline = time.monotonic() + wait
        while self._queue and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.05)
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(1)
        self._drop_connection()
