"""The AE the DIMSE edge serves with: its C-MOVE sub-associations go out through the SCU layer.

pynetdicom's C-MOVE service opens the sub-association itself, with `ae.associate`. The
C-MOVE handler yields `(host, port, {"opener": opener})` instead of association options;
this AE then calls `opener` (which opens the association with `scu.associate`: the device's
timeouts, the partition's AE title, TCP_NODELAY, errors told apart) and hands the result to
pynetdicom, which sends the sub-operations on it and releases it. A peer that cannot be
reached or refuses is logged with the SCU layer's reason and answered as pynetdicom does
(0xA801, the destination cannot be reached).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from pynetdicom import AE
from pynetdicom.association import Association

from hounsfield.dicomnet.direct.association import DirectAssociation
from hounsfield.errors import PeerError

log = logging.getLogger(__name__)

Opener = Callable[[], Association]
"""Opens an established association, or raises a PeerError."""


class _NotEstablished:
    """What pynetdicom is handed when the opener failed: an association that is not up."""

    is_established = False

    class dul:
        class socket:
            @staticmethod
            def close() -> None:
                return None


def winding_down(assoc: Association) -> bool:
    """Whether an association is released, aborted or rejected (or its A-RELEASE-RP is
    queued) while its thread may still be running: it no longer holds a place under the
    limit."""
    ended = assoc.is_released or assoc.is_aborted or assoc.is_rejected
    return bool(ended or getattr(assoc, "_sent_release", False))


class ServingAE(AE):
    """A pynetdicom AE whose `associate` calls an `opener` when one is given."""

    @property
    def active_associations(self) -> list[Any]:
        """pynetdicom's, less the associations already released or aborted whose threads
        are still winding down: they counted against `maximum_associations`, so a client
        that released and at once associated again could be refused. An association whose
        A-RELEASE-RP is queued counts as released: the peer may hold the reply (and open its
        next association) before this side's thread has marked it released. Associations
        on the direct path (`direct.association`, threads of their own) count too."""
        found = [a for a in super().active_associations if not winding_down(a)]
        return found + [
            t
            for t in threading.enumerate()
            if isinstance(t, DirectAssociation) and t.ae is self and not winding_down(t)
        ]

    def associate(self, addr: str, port: int, *args: Any, **kwargs: Any) -> Any:
        opener: Opener | None = kwargs.pop("opener", None)
        if opener is None:
            return super().associate(addr, port, *args, **kwargs)
        try:
            return opener()
        except PeerError as exc:
            log.error("C-MOVE destination %s: %s", kwargs.get("ae_title", addr), exc)
            return _NotEstablished()
