"""A remote DICOM application entity and the timeouts an association to it uses."""

from __future__ import annotations

from dataclasses import dataclass

from hounsfield.settings import Settings


@dataclass(frozen=True)
class Peer:
    """A peer to open associations to; a timeout left None takes the node's setting."""

    ae_title: str
    host: str
    port: int
    connect_timeout: float | None = None
    association_timeout: float | None = None
    dimse_timeout: float | None = None

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True)
class Timeouts:
    """Seconds for each wait of an association: TCP connect, ACSE negotiation and release,
    each DIMSE response, and silence on an open association (`idle`)."""

    connect: float
    association: float
    dimse: float
    idle: float

    @classmethod
    def of(cls, peer: Peer, settings: Settings) -> Timeouts:
        """The peer's own timeouts, the node's settings where it has none."""
        dimse = _pick(peer.dimse_timeout, settings.dimse_timeout)
        return cls(
            connect=_pick(peer.connect_timeout, settings.connect_timeout),
            association=_pick(peer.association_timeout, settings.association_timeout),
            dimse=dimse,
            # The idle timer must not cut a DIMSE wait short.
            idle=max(settings.idle_timeout, dimse),
        )


def _pick(own: float | None, default: float) -> float:
    return own if own is not None and own > 0 else default
