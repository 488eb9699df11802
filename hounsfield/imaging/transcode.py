"""Re-encode a stored object for a client that does not take its stored transfer syntax."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from pydicom.uid import JPEG2000, UID, ExplicitVRLittleEndian, JPEG2000Lossless

from hounsfield.archive.filemeta import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION
from hounsfield.archive.retrieve import CannotTranscode, to_little_endian

TARGETS = (ExplicitVRLittleEndian, JPEG2000Lossless, JPEG2000)


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
