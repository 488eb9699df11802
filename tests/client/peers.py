"""Peers for the client tests: storage SCPs that count, abort, stall or refuse, and closed ports."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from typing import Any

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from tests.dcmtk import free_port


class CountingSCP:
    """A pynetdicom storage SCP that counts each C-STORE it receives (answered or not);
    `abort_at`: the n-th C-STORE (1-based) aborts the association instead of answering;
    `stall_at`: the n-th is answered only after `stall` seconds."""

    def __init__(
        self,
        ae_title: str = "HOUNSFIELD",
        *,
        abort_at: int | None = None,
        stall_at: int | None = None,
        stall: float = 5.0,
        max_associations: int = 16,
    ) -> None:
        self.port = free_port()
        self.abort_at, self.stall_at, self.stall = abort_at, stall_at, stall
        self.received: list[str] = []  # SOP Instance UIDs in order of arrival
        self.associations = 0
        self.lock = threading.Lock()
        ae = AE(ae_title=ae_title)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax)
        ae.add_supported_context(Verification)
        ae.maximum_associations = max_associations
        self.ae = ae
        self.server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self._store), (evt.EVT_ACCEPTED, self._opened)],
        )

    @property
    def stores(self) -> Counter[str]:
        """Times each SOP Instance UID arrived."""
        with self.lock:
            return Counter(self.received)

    def _opened(self, _event: Any) -> None:
        with self.lock:
            self.associations += 1

    def _store(self, event: Any) -> int:
        with self.lock:
            self.received.append(str(event.request.AffectedSOPInstanceUID))
            n = len(self.received)
        if n == self.abort_at:
            event.assoc.abort()
            return 0xC000
        if n == self.stall_at:
            time.sleep(self.stall)
        return 0x0000

    def stop(self) -> None:
        """Stop listening."""
        self.server.shutdown()


def closed_port() -> int:
    """A port nobody listens on: connections to it are refused."""
    return free_port()


class Silent:
    """A TCP listener that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])

    def stop(self) -> None:
        """Stop listening (and drop what was accepted)."""
        self.sock.close()
