"""Find the Pixel Data of a stored file and cut frames out of it without decoding them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame, parse_basic_offsets
from pydicom.filereader import read_file_meta_info
from pydicom.pixels import pixel_array
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from hounsfield.errors import InvalidDataset, NotFound

PIXEL_DATA = 0x7FE00010
DEFER = 4096
_PIXEL_TAG = b"\xe0\x7f\x10\x00"
_ITEM, _END = 0xFFFEE000, 0xFFFEE0DD
Extent = tuple[int, int]  # (file offset, length) of one fragment's bytes
# The media type a stored compressed frame travels as (PS3.18 Table 8.7.4-1).
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
}


@dataclass(frozen=True)
class PixelSource:
    """Where a stored object's pixels are and how they are encoded."""

    path: Path
    dataset: Dataset  # every attribute; large values may be left unread
    transfer_syntax: str
    offset: int | None  # file offset of a native Pixel Data value read in place
    length: int
    encapsulated: bool
    # Where each frame's fragments are in the file (encapsulated only; None: not mapped).
    extents: tuple[tuple[Extent, ...], ...] | None = None

    @property
    def frames(self) -> int:
        """How many frames the object has."""
        try:
            return max(1, int(self.dataset.get("NumberOfFrames") or 1))
        except (TypeError, ValueError):
            return 1

    @property
    def frame_size(self) -> int:
        """Bytes per native frame (bit-packed single-bit frames excluded)."""
        ds = self.dataset
        return (
            int(ds.Rows)
            * int(ds.Columns)
            * int(ds.get("SamplesPerPixel") or 1)
            * (int(ds.BitsAllocated) // 8)
        )

    @property
    def in_place(self) -> bool:
        """True when native frames can be read straight from the file as little endian."""
        return (
            self.offset is not None
            and not self.encapsulated
            and int(self.dataset.get("BitsAllocated") or 0) % 8 == 0
            and self.transfer_syntax != ExplicitVRBigEndian
        )


def open_source(path: Path) -> PixelSource:
    """Read a stored object's attributes, leaving the Pixel Data on disk."""
    try:
        meta_syntax = UID(str(read_file_meta_info(path).get("TransferSyntaxUID", "")))
        encapsulated = meta_syntax.is_transfer_syntax and meta_syntax.is_encapsulated
    except Exception:  # left to the full read below, which says what is wrong
        encapsulated = False
    if encapsulated and meta_syntax != DeflatedExplicitVRLittleEndian:
        found = _open_encapsulated(path, meta_syntax)
        if found is not None:
            return found
    try:
        ds = dcmread(path, defer_size=DEFER)
    except Exception as exc:
        raise InvalidDataset(f"{path.name} cannot be read: {exc}") from exc
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if PIXEL_DATA not in ds or "Rows" not in ds:
        raise NotFound("the object has no pixel data")
    raw = ds.get_item(PIXEL_DATA, keep_deferred=True)
    encapsulated = UID(syntax).is_encapsulated if syntax else False
    deferred = isinstance(raw, RawDataElement) and raw.value is None
    in_file = deferred and not encapsulated and syntax != DeflatedExplicitVRLittleEndian
    offset = raw.value_tell if in_file and isinstance(raw, RawDataElement) else None
    length = int(getattr(raw, "length", 0) or 0)
    return PixelSource(path, ds, syntax, offset, length, encapsulated)


def _open_encapsulated(path: Path, syntax: str) -> PixelSource | None:
    """The attributes and the fragment map of an encapsulated object, reading no pixels;
    None when its Pixel Data is not where a plain file keeps it or its frames are not mapped."""
    try:
        with open(path, "rb") as fh:
            ds = dcmread(fh, defer_size=DEFER, stop_before_pixels=True)
            head = fh.read(12)
            if head[:4] != _PIXEL_TAG or head[8:12] != b"\xff\xff\xff\xff":
                return None
            offsets = parse_basic_offsets(fh)
            fragments = _fragments(fh)
    except Exception as exc:
        raise InvalidDataset(f"{path.name} cannot be read: {exc}") from exc
    if "Rows" not in ds:
        raise NotFound("the object has no pixel data")
    src = PixelSource(path, ds, syntax, None, 0xFFFFFFFF, True)
    extents = _by_frame(fragments, offsets, src.frames)
    return None if extents is None else replace(src, extents=extents)


def _fragments(fh: BinaryIO) -> list[tuple[int, Extent]]:
    """(item position, (data offset, length)) of each fragment, from the item headers only."""
    out: list[tuple[int, Extent]] = []
    while len(head := fh.read(8)) == 8:
        tag = (int.from_bytes(head[:2], "little") << 16) | int.from_bytes(head[2:4], "little")
        length = int.from_bytes(head[4:], "little")
        if tag == _END:
            break
        if tag != _ITEM:
            raise InvalidDataset(f"unexpected tag {tag:08X} among the pixel data fragments")
        start = fh.tell()
        out.append((start - 8, (start, length)))
        fh.seek(length, 1)
    return out


def _by_frame(
    fragments: list[tuple[int, Extent]], offsets: list[int], frames: int
) -> tuple[tuple[Extent, ...], ...] | None:
    """Each frame's fragments: one per frame, by the Basic Offset Table, or all for one frame."""
    if len(fragments) == frames:
        return tuple((extent,) for _at, extent in fragments)
    if frames == 1:
        return (tuple(extent for _at, extent in fragments),)
    if len(offsets) != frames or not fragments:
        return None
    first = fragments[0][0]
    bounds = [*offsets, fragments[-1][0] - first + 1]
    grouped = tuple(
        tuple(e for at, e in fragments if bounds[i] <= at - first < bounds[i + 1])
        for i in range(frames)
    )
    return grouped if all(grouped) else None


def read_extents(path: Path, extents: tuple[Extent, ...], limit: int | None = None) -> bytes:
    """The bytes of some fragments of a file, joined; at most `limit` of them."""
    out = bytearray()
    with open(path, "rb") as fh:
        for offset, length in extents:
            want = length if limit is None else min(length, limit - len(out))
            fh.seek(offset)
            out += fh.read(want)
            if limit is not None and len(out) >= limit:
                break
    return bytes(out)


def stored_frame(src: PixelSource, index: int) -> bytes:
    """Frame `index` (0-based) as stored: a compressed codestream or native bytes."""
    if not 0 <= index < src.frames:
        raise NotFound(f"frame {index + 1} does not exist (the object has {src.frames})")
    if src.extents is not None:
        return read_extents(src.path, src.extents[index])
    if src.encapsulated:
        value = src.dataset[PIXEL_DATA].value
        try:
            return get_frame(value, index, number_of_frames=src.frames)
        except Exception as exc:
            raise InvalidDataset(f"frame {index + 1} cannot be located: {exc}") from exc
    size = src.frame_size
    if src.offset is not None:
        with open(src.path, "rb") as fh:
            fh.seek(src.offset + index * size)
            return fh.read(size)
    value = src.dataset[PIXEL_DATA].value
    return bytes(value[index * size : (index + 1) * size])


def native_frame(src: PixelSource, index: int) -> bytes:
    """Frame `index` as uncompressed little endian bytes, decoding only when it must."""
    bits = int(src.dataset.get("BitsAllocated") or 0)
    if not src.encapsulated and bits % 8 == 0:
        data = stored_frame(src, index)
        if src.transfer_syntax == ExplicitVRBigEndian and bits > 8:
            return np.frombuffer(data, f">u{bits // 8}").astype(f"<u{bits // 8}").tobytes()
        return data
    if not 0 <= index < src.frames:
        raise NotFound(f"frame {index + 1} does not exist (the object has {src.frames})")
    try:
        arr = pixel_array(str(src.path), index=index)
    except Exception as exc:
        raise InvalidDataset(f"frame {index + 1} cannot be decoded: {exc}") from exc
    return np.ascontiguousarray(arr).tobytes()
