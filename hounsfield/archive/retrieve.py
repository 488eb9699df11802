"""Retrieve: choose how each stored object travels, decompressing only when the peer needs it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from hounsfield.archive.query import Located
from hounsfield.errors import ArchiveError

UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
NATIVE = (*UNCOMPRESSED, ExplicitVRBigEndian)


class CannotTranscode(ArchiveError):
    """The stored object cannot be converted to any transfer syntax the peer accepts."""

    dimse_status = 0xA702
    http_status = 406


@dataclass(frozen=True)
class Plan:
    """An object as the peer will get it: the stored file as is, or a converted dataset."""

    located: Located
    path: Path | None
    dataset: Dataset | None


def plan(located: Located, accepted: Iterable[str]) -> Plan:
    """Send stored bytes when the stored syntax is accepted; otherwise convert to one that is."""
    accepted = set(accepted)
    if located.transfer_syntax in accepted:
        return Plan(located, located.path, None)
    target = next((ts for ts in (*UNCOMPRESSED, ExplicitVRBigEndian) if ts in accepted), None)
    if target is None:
        raise CannotTranscode(
            f"{located.sop_instance} is stored as {located.transfer_syntax}; peer accepts "
            f"{', '.join(sorted(accepted)) or 'nothing'} for {located.sop_class}"
        )
    return Plan(located, None, convert(located.path, target))


def convert(path: Path, target: str) -> Dataset:
    """Read a stored object and decompress it to an uncompressed transfer syntax."""
    ds = dcmread(path)
    if not UID(ds.file_meta.TransferSyntaxUID).is_compressed:
        ds.file_meta.TransferSyntaxUID = UID(target)
        return ds
    try:
        ds.decompress()
    except Exception as exc:
        raise CannotTranscode(f"cannot decompress {path.name}: {exc}") from exc
    ds.file_meta.TransferSyntaxUID = UID(target)
    return ds
