"""Remote DICOM devices (AE title, host, port, how to forward to them) kept in the database."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy import delete, select, update

from hounsfield.archive.context import Archive
from hounsfield.audit.config import config_changed, differs
from hounsfield.db import engine as db
from hounsfield.db.tables import device
from hounsfield.dicomnet.peer import format_address, parse_address
from hounsfield.errors import InvalidDataset, NotFound
from hounsfield.settings import DeviceConfig

PROTOCOLS = ("dimse", "dicomweb")


@dataclass(frozen=True)
class Device:
    """A peer the archive may send to or accept from. As a forwarding destination: `protocol`
    "dimse" (C-STORE to host:port) or "dicomweb" (STOW-RS to `url`), up to `associations`
    at once, at most `bandwidth_kbps` (kbit/s) when set, with storage commitment when
    `commitment`. `alternates` ("host:port") are further addresses of the same AE (the
    other nodes of a cluster), tried in turn when an association cannot be opened at
    host:port. With `tls` associations to it run over TLS (a DICOMweb device: its URL is
    https)."""

    ae_title: str
    host: str
    port: int
    description: str = ""
    protocol: str = "dimse"
    url: str = ""
    associations: int = 1
    bandwidth_kbps: int | None = None
    commitment: bool = False
    alternates: tuple[str, ...] = ()
    tls: bool = False


def _check(new: Device) -> str:
    ae_title = new.ae_title.strip()
    if not 0 < len(ae_title) <= 16 or "\\" in ae_title:
        raise InvalidDataset(f"invalid AE title {ae_title!r}")
    if not 0 < new.port < 65536:
        raise InvalidDataset(f"invalid port {new.port}")
    if new.protocol not in PROTOCOLS:
        raise InvalidDataset(f"protocol is one of {', '.join(PROTOCOLS)}, not {new.protocol!r}")
    if new.protocol == "dicomweb" and not new.url.startswith(("http://", "https://")):
        raise InvalidDataset("a DICOMweb device needs its base URL (http:// or https://)")
    if not 1 <= new.associations <= 16:
        raise InvalidDataset("associations is 1 to 16")
    if new.bandwidth_kbps is not None and new.bandwidth_kbps < 8:
        raise InvalidDataset("a bandwidth cap is at least 8 kbit/s")
    if new.commitment and new.protocol != "dimse":
        raise InvalidDataset("storage commitment is requested over DIMSE only")
    if new.tls and new.protocol == "dicomweb" and not new.url.startswith("https://"):
        raise InvalidDataset("a DICOMweb device over TLS needs an https:// URL")
    normal_alternates(new.alternates)
    return ae_title


def normal_alternates(alternates: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The alternate addresses as "host:port", without repeats; InvalidDataset when one is
    not host:port."""
    out: dict[str, None] = {}
    for text in alternates:
        try:
            out.setdefault(format_address(parse_address(text)), None)
        except ValueError as exc:
            raise InvalidDataset(f"invalid alternate address: {exc}") from exc
    return tuple(out)


def _alternates(stored: str | None) -> tuple[str, ...]:
    try:
        found = json.loads(stored or "[]")
    except ValueError:
        return ()
    return tuple(str(a) for a in found) if isinstance(found, list) else ()


def _device(row: Any) -> Device:
    return Device(
        row["ae_title"],
        row["host"],
        row["port"],
        row["description"],
        row["protocol"],
        row["url"],
        row["associations"],
        row["bandwidth_kbps"],
        bool(row["commitment"]),
        _alternates(row["alternates"]),
        bool(row["tls"]),
    )


def add_device(archive: Archive, new: Device) -> bool:
    """Add or update a device; True if it was new."""
    title = _check(new)
    new = replace(new, alternates=normal_alternates(new.alternates))
    values = {k: v for k, v in asdict(new).items() if k != "ae_title"}
    values["alternates"] = json.dumps(list(new.alternates))
    with db.write(archive.engine) as conn:
        found = conn.execute(select(device).where(device.c.ae_title == title)).mappings().first()
        if found is None:
            conn.execute(device.insert().values(ae_title=title, **values))
            config_changed(archive.engine, f"device {title} added")
            return True
        if differs(found, values):
            conn.execute(update(device).where(device.c.pk == found["pk"]).values(**values))
            config_changed(archive.engine, f"device {title} changed")
        return False


def remove_device(archive: Archive, ae_title: str) -> None:
    """Remove a device or raise NotFound."""
    with db.write(archive.engine) as conn:
        if conn.execute(delete(device).where(device.c.ae_title == ae_title)).rowcount == 0:
            raise NotFound(f"no device with AE title {ae_title!r}")
    config_changed(archive.engine, f"device {ae_title} removed")


def list_devices(archive: Archive) -> list[Device]:
    """Every device, by AE title."""
    with db.read(archive.engine) as conn:
        rows = conn.execute(select(device).order_by(device.c.ae_title)).mappings().all()
    return [_device(r) for r in rows]


def find_device(archive: Archive, ae_title: str) -> Device | None:
    """The device with this AE title, or None."""
    with db.read(archive.engine) as conn:
        row = conn.execute(select(device).where(device.c.ae_title == ae_title)).mappings().first()
    return _device(row) if row else None


def apply_declared(archive: Archive, declared: list[DeviceConfig]) -> None:
    """Make the devices declared in the TOML file exist as declared (idempotent)."""
    for d in declared:
        add_device(archive, Device(**{**d.model_dump(), "alternates": tuple(d.alternates)}))
