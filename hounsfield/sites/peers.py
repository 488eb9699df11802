"""Known devices as peers: the Peer to open associations to, and a C-ECHO to check one."""

from __future__ import annotations

import time
from dataclasses import dataclass

from hounsfield.archive.context import Archive
from hounsfield.dicomnet.contexts import query_contexts
from hounsfield.dicomnet.peer import Peer, parse_address
from hounsfield.dicomnet.scu import VERIFICATION, associate
from hounsfield.errors import NotFound
from hounsfield.sites.devices import Device, find_device


def peer_of(found: Device, timeout: float | None = None) -> Peer:
    """The device as a peer to open associations to (at its address, then its alternates,
    over TLS when it says so): every wait bounded by `timeout`, or by the node's settings."""
    return Peer(
        found.ae_title,
        found.host,
        found.port,
        timeout,
        timeout,
        timeout,
        alternates=tuple(parse_address(a) for a in found.alternates),
        tls=found.tls,
    )


@dataclass(frozen=True)
class EchoResult:
    """A C-ECHO's answer and how long the association and the echo took."""

    ae_title: str
    host: str
    port: int
    status: int
    seconds: float


def echo(archive: Archive, ae_title: str, *, timeout: float | None = None) -> EchoResult:
    """C-ECHO a known device; `timeout` bounds each wait (connect, association, response)
    instead of the node's settings. NotFound for an unknown device; the SCU errors
    (PeerUnreachable, AssociationRejected, AssociationAborted, PeerTimeout) on failure."""
    found = find_device(archive, ae_title.strip())
    if found is None:
        raise NotFound(f"no device with AE title {ae_title!r}")
    peer = peer_of(found, timeout)
    started = time.perf_counter()
    with associate(peer, archive.settings, query_contexts([VERIFICATION])) as link:
        status = link.echo()
        seconds = time.perf_counter() - started
    return EchoResult(found.ae_title, found.host, found.port, status, seconds)
