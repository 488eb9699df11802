"""File Meta Information the archive writes in front of every stored dataset."""

from __future__ import annotations

import struct
from io import BytesIO

from pydicom.dataset import FileMetaDataset
from pydicom.filereader import _read_file_meta_info

from hounsfield import __version__
from hounsfield.errors import InvalidDataset

IMPLEMENTATION_CLASS_UID = "2.25.154064830640358652879646194109826679242"
IMPLEMENTATION_VERSION = f"HOUNSFIELD_{__version__}"[:16]
PREAMBLE = b"\x00" * 128 + b"DICM"


def file_meta_bytes(
    sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str
) -> bytes:
    """Preamble, DICM prefix and the File Meta Information group (explicit VR little endian).

    Encoded directly: this runs for every stored object and pydicom's general writer costs
    several times more for these seven fixed elements."""
    body = b"".join(
        (
            _element(0x0001, b"OB", b"\x00\x01"),
            _element(0x0002, b"UI", _uid(sop_class)),
            _element(0x0003, b"UI", _uid(sop_instance)),
            _element(0x0010, b"UI", _uid(transfer_syntax)),
            _element(0x0012, b"UI", _uid(IMPLEMENTATION_CLASS_UID)),
            _element(0x0013, b"SH", _text(IMPLEMENTATION_VERSION)),
            _element(0x0016, b"AE", _text(source_ae)) if source_ae else b"",
        )
    )
    return PREAMBLE + _element(0x0000, b"UL", struct.pack("<I", len(body))) + body


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    if vr == b"OB":
        return struct.pack("<HH2sHI", 0x0002, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _uid(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def _text(value: str) -> bytes:
    raw = value.strip().encode("ascii", "replace")[:16]
    return raw + b" " if len(raw) % 2 else raw


def split_part10(raw: bytes) -> tuple[FileMetaDataset, bytes]:
    """The File Meta Information and the dataset bytes of a Part-10 file held in memory."""
    if len(raw) < 132 or raw[128:132] != b"DICM":
        raise InvalidDataset("not a DICOM Part-10 file (no DICM prefix)")
    fp = BytesIO(raw)
    fp.seek(132)
    try:
        meta = _read_file_meta_info(fp)
        str(meta)  # converts every element, nested ones too: a corrupt value fails here
    except Exception as exc:
        raise InvalidDataset(f"File Meta Information cannot be read: {exc}") from exc
    if "TransferSyntaxUID" not in meta:
        raise InvalidDataset("File Meta Information has no Transfer Syntax UID")
    return meta, raw[fp.tell() :]


def dataset_offset(path: str) -> int:
    """Where the dataset starts in a Part-10 file written by the archive."""
    with open(path, "rb") as fh:
        head = fh.read(144)
        if head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
            raise InvalidDataset(f"{path} does not start with a group length")
        return 144 + int.from_bytes(head[140:144], "little")
