"""Remote DICOM devices (AE title, host, port) kept in the database."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import device
from hounsfield.dicomnet.contexts import query_contexts
from hounsfield.dicomnet.peer import Peer
from hounsfield.dicomnet.scu import VERIFICATION, associate
from hounsfield.errors import InvalidDataset, NotFound
from hounsfield.settings import DeviceConfig, Settings


@dataclass(frozen=True)
class Device:
    """A peer the archive may send to or accept from."""

    ae_title: str
    host: str
    port: int
    description: str = ""


def _check(ae_title: str, port: int) -> str:
    ae_title = ae_title.strip()
    if not 0 < len(ae_title) <= 16 or "\\" in ae_title:
        raise InvalidDataset(f"invalid AE title {ae_title!r}")
    if not 0 < port < 65536:
        raise InvalidDataset(f"invalid port {port}")
    return ae_title


def add_device(archive: Archive, new: Device) -> bool:
    """Add or update a device; True if it was new."""
    title = _check(new.ae_title, new.port)
    values = {"host": new.host, "port": new.port, "description": new.description}
    with db.write(archive.engine) as conn:
        found = conn.scalar(select(device.c.pk).where(device.c.ae_title == title))
        if found is None:
            conn.execute(device.insert().values(ae_title=title, **values))
            return True
        conn.execute(update(device).where(device.c.pk == found).values(**values))
        return False


def remove_device(archive: Archive, ae_title: str) -> None:
    """Remove a device or raise NotFound."""
    with db.write(archive.engine) as conn:
        if conn.execute(delete(device).where(device.c.ae_title == ae_title)).rowcount == 0:
            raise NotFound(f"no device with AE title {ae_title!r}")


def list_devices(archive: Archive) -> list[Device]:
    """Every device, by AE title."""
    with db.read(archive.engine) as conn:
        rows = conn.execute(select(device).order_by(device.c.ae_title)).mappings().all()
    return [Device(r["ae_title"], r["host"], r["port"], r["description"]) for r in rows]


def find_device(archive: Archive, ae_title: str) -> Device | None:
    """The device with this AE title, or None."""
    with db.read(archive.engine) as conn:
        row = conn.execute(select(device).where(device.c.ae_title == ae_title)).mappings().first()
    return Device(row["ae_title"], row["host"], row["port"], row["description"]) if row else None


def apply_declared(archive: Archive, declared: list[DeviceConfig]) -> None:
    """Make the devices declared in the TOML file exist as declared (idempotent)."""
    for d in declared:
        add_device(archive, Device(d.ae_title, d.host, d.port, d.description))


def peer_of(found: Device, settings: Settings) -> Peer:
    """The device as a peer to open associations to, with the node's timeouts."""
    return Peer(
        found.ae_title,
        found.host,
        found.port,
        connect_timeout=settings.connect_timeout,
        association_timeout=settings.association_timeout,
        dimse_timeout=settings.dimse_timeout,
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
    peer = peer_of(found, archive.settings)
    if timeout is not None:
        peer = Peer(peer.ae_title, peer.host, peer.port, timeout, timeout, timeout)
    started = time.perf_counter()
    with associate(peer, archive.settings, query_contexts([VERIFICATION])) as link:
        status = link.echo()
        seconds = time.perf_counter() - started
    return EchoResult(found.ae_title, found.host, found.port, status, seconds)
