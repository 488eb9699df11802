"""Remote DICOM devices (AE title, host, port) kept in the database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import device
from hounsfield.errors import InvalidDataset, NotFound
from hounsfield.settings import DeviceConfig


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
