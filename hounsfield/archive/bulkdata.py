"""Locate one attribute value of a stored object for a bulkdata request, by tag path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from hounsfield.errors import InvalidDataset, NotFound

DEFER = 4096
_WORDS = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8, "US": 2, "SS": 2, "FL": 4, "FD": 8}


@dataclass(frozen=True)
class Value:
    """A value either in place in the file (offset, length) or already read (data)."""

    path: Path
    offset: int
    length: int
    data: bytes | None = None


def parse_tag_path(text: str) -> list[int]:
    """'00540016/0/00181072' -> [tag, item, tag]: tags in hex, item numbers 0-based."""
    parts = [p for p in text.strip("/").split("/") if p]
    if not parts or len(parts) % 2 == 0:
        raise NotFound(f"bulkdata path {text!r} does not end with an attribute tag")
    out = []
    for i, part in enumerate(parts):
        try:
            out.append(int(part, 16) if i % 2 == 0 else int(part))
        except ValueError as exc:
            raise NotFound(f"bulkdata path {text!r} is not tag/item/tag...") from exc
    return out


def find_value(path: Path, tag_path: list[int]) -> Value:
    """The value a tag path names, little endian, read in place where the file allows."""
    try:
        ds = dcmread(path, defer_size=DEFER)
    except Exception as exc:
        raise InvalidDataset(f"{path.name} cannot be read: {exc}") from exc
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    target: Dataset = ds
    for i in range(0, len(tag_path) - 1, 2):
        seq = target.get(tag_path[i])
        if seq is None or seq.VR != "SQ" or not 0 <= tag_path[i + 1] < len(seq.value):
            raise NotFound("the bulkdata path names no stored value")
        target = seq.value[tag_path[i + 1]]
    tag = tag_path[-1]
    if tag not in target:
        raise NotFound(f"attribute {tag:08X} is not in the object")
    raw = target.get_item(tag, keep_deferred=True)
    in_place = (
        len(tag_path) == 1
        and isinstance(raw, RawDataElement)
        and raw.value is None
        and syntax not in (ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian)
    )
    if in_place:
        assert isinstance(raw, RawDataElement)
        return Value(path, raw.value_tell, raw.length)
    elem = target[tag]
    data = elem.value
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, bytes | bytearray):
        raise NotFound(f"attribute {tag:08X} is not a binary value")
    width = _WORDS.get(elem.VR or "")
    if syntax == ExplicitVRBigEndian and width and len(data) % width == 0:
        data = np.frombuffer(data, f">u{width}").astype(f"<u{width}").tobytes()
    return Value(path, 0, len(data), bytes(data))
