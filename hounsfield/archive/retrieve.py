"""Retrieve: choose how each stored object travels, decompressing only when the peer needs it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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
    if not accepted & set(NATIVE):
        raise CannotTranscode(
            f"{located.sop_instance} is stored as {located.transfer_syntax}; the peer accepts "
            f"{', '.join(sorted(accepted)) or 'nothing'} for {located.sop_class}"
        )
    return Plan(located, None, to_little_endian(located.path))


def to_little_endian(path: Path) -> Dataset:
    """A stored object decoded to an uncompressed little endian dataset.

    pynetdicom converts between the little endian syntaxes itself as it sends."""
    ds = dcmread(path)
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if syntax.is_compressed:
        try:
            ds.decompress(generate_instance_uid=False)
        except Exception as exc:
            raise CannotTranscode(f"cannot decompress {path.name}: {exc}") from exc
    elif syntax == ExplicitVRBigEndian:
        _swap_words(ds)
        ds.set_original_encoding(False, True, ds.original_character_set)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


_WIDTH = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _swap_words(ds: Dataset) -> None:
    """Swap the byte order of the word-valued binary elements of a big endian dataset."""
    for elem in ds.iterall():
        width = _WIDTH.get(elem.VR)
        if width and isinstance(elem.value, bytes) and len(elem.value) % width == 0:
            elem.value = np.frombuffer(elem.value, f">u{width}").astype(f"<u{width}").tobytes()
