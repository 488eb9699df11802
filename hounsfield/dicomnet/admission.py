"""Admission of incoming associations by the archive's own rules, before pynetdicom negotiates.

pynetdicom checks one called AE title and one calling allow-list per AE; an archive with
partitions has many of each. `install()` lets an AE carry an admission function that sees
the A-ASSOCIATE-RQ first and either rejects it (result, source, reason) or lets pynetdicom
go on, with whatever the function attached to the association (its partition).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from pynetdicom import evt
from pynetdicom.acse import ACSE
from pynetdicom.association import Association

log = logging.getLogger(__name__)

# (result, source, reason) of an A-ASSOCIATE-RJ, PS3.8 9.3.4
Rejection = tuple[int, int, int]
CALLING_AE_NOT_RECOGNISED: Rejection = (0x01, 0x01, 0x03)
CALLED_AE_NOT_RECOGNISED: Rejection = (0x01, 0x01, 0x07)
TEMPORARY_CONGESTION: Rejection = (0x02, 0x03, 0x01)  # transient: try again, or elsewhere
Admit = Callable[[Association, str, str, str, int], Rejection | None]
_ATTRIBUTE = "_hounsfield_admit"
_original: Callable[[ACSE], None] | None = None


def set_admission(ae: Any, admit: Admit) -> None:
    """Give `ae` an admission function: (association, calling AE, called AE, peer host,
    local port) -> a rejection, or None to go on."""
    setattr(ae, _ATTRIBUTE, admit)


def admission_of(ae: Any) -> Admit | None:
    """The admission function given to `ae`, if any."""
    return getattr(ae, _ATTRIBUTE, None)


def _negotiate_as_acceptor(self: ACSE) -> None:
    admit = admission_of(self.assoc.ae)
    if admit is not None:
        rq = self.requestor.primitive
        calling = str(rq.calling_ae_title or "").strip()
        called = str(rq.called_ae_title or "").strip()
        # The caller's address as the connection was accepted (a PROXY protocol header's
        # client, behind a load balancer), not the socket's peer
        host, port = str(self.assoc.requestor.address or ""), 0
        sock = getattr(self.assoc.dul.socket, "socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                host = host or sock.getpeername()[0]
                port = sock.getsockname()[1]
        try:
            rejection = admit(self.assoc, calling, called, host, port)
        except Exception:
            log.exception("admission check failed; association from %r refused", calling)
            rejection = (0x02, 0x01, 0x01)  # transient, no reason given
        if rejection is not None:
            self.requestor.ae_title = calling
            self.send_reject(*rejection)
            evt.trigger(self.assoc, evt.EVT_REJECTED, {})
            self.assoc.kill()
            return
    assert _original is not None
    _original(self)


def install() -> None:
    """Let admission functions run before pynetdicom's own checks (idempotent)."""
    global _original
    if _original is None:
        _original = ACSE._negotiate_as_acceptor
        ACSE._negotiate_as_acceptor = _negotiate_as_acceptor  # type: ignore[method-assign]
