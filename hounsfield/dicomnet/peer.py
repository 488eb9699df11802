"""A remote DICOM application entity and the timeouts an association to it uses."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hounsfield.settings import Settings

Address = tuple[str, int]
"""A host and TCP port."""


@dataclass(frozen=True)
class Peer:
    """A peer to open associations to; a timeout left None takes the node's setting.
    `alternates` are further addresses of the same AE (the nodes of a cluster): an
    association that cannot be opened at `host`:`port` is tried at each of them in turn.
    With `tls` the association runs over TLS (the node's client context)."""

    ae_title: str
    host: str
    port: int
    connect_timeout: float | None = None
    association_timeout: float | None = None
    dimse_timeout: float | None = None
    alternates: tuple[Address, ...] = ()
    tls: bool = False

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"

    def addresses(self) -> tuple[Address, ...]:
        """The main address, then each alternate, without repeats."""
        return tuple(dict.fromkeys(((self.host, self.port), *self.alternates)))

    def at(self, address: Address) -> Peer:
        """The same peer at `address` alone."""
        host, port = address
        return replace(self, host=host, port=port, alternates=())


def parse_address(text: str) -> Address:
    """ "host:port" ("[v6::addr]:port" for IPv6) as an address; ValueError when malformed."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip().removeprefix("[").removesuffix("]")
    if not sep or not host or not port.strip().isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not host:port: {text!r}")
    return host, int(port)


def format_address(address: Address) -> str:
    """An address as "host:port" ("[v6::addr]:port" for IPv6)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
