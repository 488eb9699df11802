"""C-FIND response identifiers written straight to bytes from their (tag, VR, value) elements.

A C-FIND answer holds a handful of short text elements taken from index columns. Building a
pydicom Dataset for each, then having pynetdicom encode it, cost more than the rest of the
response together (IMAGE-level listings of thousands of instances, bench/RESULTS.md). Here the
elements are written in Little Endian (implicit or explicit VR) as they are, and pynetdicom's
`encode` passes such an identifier through; anything this writer does not cover (a sequence,
a binary value, an element copied from a stored header) is answered as a Dataset instead.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import service_class

Element = tuple[int, str, Any]  # tag, VR, value: None (empty), str, int or a list of them
TEXT_VRS = frozenset(
    [
        "AE",
        "AS",
        "CS",
        "DA",
        "DS",
        "DT",
        "IS",
        "LO",
        "LT",
        "PN",
        "SH",
        "ST",
        "TM",
        "UC",
        "UI",
        "UR",
        "UT",
    ]
)
_LONG_VRS = frozenset({"UC", "UR", "UT"})  # explicit VR with a 4-byte length
_IMPLICIT = struct.Struct("<HHI")
_EXPLICIT = struct.Struct("<HH2sH")
_EXPLICIT_LONG = struct.Struct("<HH2sHI")


class EncodedIdentifier(Dataset):
    """A response identifier already encoded for its association's transfer syntax; only the
    DIMSE edge sends it (its Dataset side is empty)."""

    def __init__(self, encoded: bytes, implicit: bool) -> None:
        super().__init__()
        self.__dict__["hf_encoded"] = (encoded, implicit)

    def encoded(self, implicit: bool) -> bytes:
        """The identifier's bytes; they were written for one VR encoding only."""
        data, written_implicit = self.__dict__["hf_encoded"]
        if implicit != written_implicit:
            raise ValueError("identifier encoded for another transfer syntax")
        return data  # type: ignore[no-any-return]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "\\".join("" if v is None else str(v) for v in value)
    return str(value)


def encode_elements(elements: Sequence[Element], implicit: bool) -> bytes | None:
    """The elements in tag order as Little Endian bytes (UTF-8 text: a caller that has
    non-ASCII values adds Specific Character Set ISO_IR 192), or None when one of them is
    not a text value this writer covers."""
    parts: list[bytes] = []
    for tag, vr, value in sorted(elements, key=lambda e: e[0]):
        if vr not in TEXT_VRS or not isinstance(value, str | int | list | tuple | None):
            return None
        raw = _text(value).encode("utf-8")
        if len(raw) % 2:
            raw += b"\0" if vr == "UI" else b" "
        group, number = tag >> 16, tag & 0xFFFF
        if implicit:
            parts.append(_IMPLICIT.pack(group, number, len(raw)))
        elif vr in _LONG_VRS:
            parts.append(_EXPLICIT_LONG.pack(group, number, vr.encode(), 0, len(raw)))
        elif len(raw) <= 0xFFFF:
            parts.append(_EXPLICIT.pack(group, number, vr.encode(), len(raw)))
        else:
            return None
        parts.append(raw)
    return b"".join(parts)


def identifier(elements: Sequence[Element], implicit: bool) -> EncodedIdentifier | None:
    """The elements as an identifier ready to send, or None (answer with a Dataset)."""
    data = encode_elements(elements, implicit)
    return None if data is None else EncodedIdentifier(data, implicit)


_original_encode = service_class.encode


def encode_identifier(
    ds: Any, is_implicit_vr: bool, is_little_endian: bool, deflated: bool = False
) -> Any:
    """pynetdicom's `encode` (bytes, or None when it fails), passing an already encoded
    identifier through."""
    if isinstance(ds, EncodedIdentifier):
        if not is_little_endian or deflated:
            raise ValueError("identifier encoded for another transfer syntax")
        return ds.encoded(is_implicit_vr)
    return _original_encode(ds, is_implicit_vr, is_little_endian, deflated)


def install() -> None:
    """Let pynetdicom's service classes send encoded identifiers (idempotent)."""
    service_class.encode = encode_identifier  # type: ignore[assignment]
