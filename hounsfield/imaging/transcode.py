"""Re-encode a stored object for a client that does not take its stored transfer syntax."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
)

from hounsfield.errors import ArchiveError
from hounsfield.storage.filemeta import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION

TARGETS = (ExplicitVRLittleEndian, JPEG2000Lossless, JPEG2000)
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
NATIVE = (*UNCOMPRESSED, ExplicitVRBigEndian)


class CannotTranscode(ArchiveError):
    """The stored object cannot be converted to any transfer syntax the peer accepts."""

    dimse_status = 0xA702
    http_status = 406


def choose(stored: str, accepted: list[str]) -> str | None:
    """The syntax to send: None for the stored bytes, else a target we can encode."""
    if "*" in accepted or stored in accepted:
        return None
    for syntax in accepted:
        if syntax in TARGETS:
            return syntax
    raise CannotTranscode(
        f"stored as {stored}; cannot produce any of {', '.join(accepted)} "
        f"(available: the stored syntax, {', '.join(TARGETS)})"
    )


def transcode(path: Path, target: str) -> bytes:
    """The object as a Part-10 file in `target` (lossless JPEG 2000 for both J2K syntaxes)."""
    ds = to_little_endian(path)
    try:
        if target == ExplicitVRLittleEndian:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        elif target == JPEG2000Lossless:
            ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
        elif target == JPEG2000:
            ds.compress(JPEG2000, encoding_plugin="pylibjpeg", j2k_cr=[1])
        else:
            raise CannotTranscode(f"cannot encode {target}")
    except CannotTranscode:
        raise
    except Exception as exc:
        raise CannotTranscode(f"cannot encode {path.name} as {target}: {exc}") from exc
    ds.file_meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    ds.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    out = BytesIO()
    ds.save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return out.getvalue()


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
