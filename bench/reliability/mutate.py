"""Mutated datasets from real corpus files: flipped, inserted and truncated bytes, broken
lengths and a corrupted File Meta group length, each one deterministic from a seed."""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path

import data_store
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.filereader import _read_file_meta_info, data_element_generator
from pydicom.uid import UID

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
PYDICOM_DATA = Path(data_store.__file__).parent / "data"
MAX_SOURCE_BYTES = 128 * 1024  # small files keep 100,000 sends to minutes
DEFLATED = "1.2.840.10008.1.2.1.99"
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR: a file-set's index, never sent
# What C-STORE can carry (the dataset) and what only a Part-10 body has (the File Meta).
DATASET_KINDS = ("flip", "insert", "truncate", "length", "combined")
META_KINDS = ("meta_length", "meta_flip")
# Values a broken length field takes: undefined, huge, odd, zero, a little too long or short.
_LENGTHS = ("undefined", "huge", "odd", "zero", "longer", "shorter")


@dataclass(frozen=True)
class Source:
    """One real Part-10 file: its File Meta bytes (preamble included) and its dataset bytes."""

    name: str
    meta: bytes
    dataset: bytes
    sop_class: str
    sop_instance: str
    transfer_syntax: str


@dataclass(frozen=True)
class Mutant:
    """A mutated object: the dataset C-STORE sends and the Part-10 body STOW-RS sends."""

    source: Source
    kind: str
    detail: str
    meta: bytes
    dataset: bytes

    @property
    def part10(self) -> bytes:
        """The whole Part-10 body."""
        return self.meta + self.dataset


@cache
def corpus(max_bytes: int = MAX_SOURCE_BYTES) -> tuple[Source, ...]:
    """Every Part-10 file of pydicom's test files and pydicom-data up to `max_bytes` whose
    File Meta names a SOP class, a SOP instance and a transfer syntax."""
    out: list[Source] = []
    for folder in (PYDICOM_FILES, PYDICOM_DATA):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if path.stat().st_size > max_bytes:
                continue
            source = _source(path)
            if source is not None:
                out.append(source)
    return tuple(out)


def _source(path: Path) -> Source | None:
    raw = path.read_bytes()
    if raw[128:132] != b"DICM":
        return None
    fp = BytesIO(raw)
    fp.seek(132)
    try:
        meta = _read_file_meta_info(fp)
        names = (
            meta.MediaStorageSOPClassUID,
            meta.MediaStorageSOPInstanceUID,
            meta.TransferSyntaxUID,
        )
    except Exception:
        return None
    if not all(UID(n).is_valid for n in names) or not UID(names[2]).is_transfer_syntax:
        return None
    if names[0] == MEDIA_DIRECTORY:
        return None
    at = fp.tell()
    name = str(path.relative_to(path.parents[1]))
    return Source(name, raw[:at], raw[at:], str(names[0]), str(names[1]), str(names[2]))


def mutants(
    sources: tuple[Source, ...], seed: int, count: int, kinds: tuple[str, ...]
) -> Iterator[Mutant]:
    """`count` mutants of sources drawn in turn, each under a SOP Instance UID of its own and
    made with its own Random(seed, i)."""
    for i in range(count):
        rng = random.Random(f"{seed}/{i}")
        yield mutate(renamed(sources[i % len(sources)], f"{seed}/{i}"), rng, rng.choice(kinds))


def renamed(source: Source, key: str) -> Source:
    """The source under another SOP Instance UID of the same length (every offset stays),
    its last component's digits drawn from `key`; the source itself when that component is
    too short to tell thousands of mutants apart."""
    head, _, last = source.sop_instance.rpartition(".")
    if len(last) < 6 or not head:
        return source
    number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:16], "big")
    new = f"{head}.9{number % 10 ** (len(last) - 1):0{len(last) - 1}d}"
    old_raw, new_raw = source.sop_instance.encode(), new.encode()
    return Source(
        source.name,
        source.meta.replace(old_raw, new_raw),
        source.dataset.replace(old_raw, new_raw),
        source.sop_class,
        new,
        source.transfer_syntax,
    )


def mutate(source: Source, rng: random.Random, kind: str) -> Mutant:
    """One mutant of `source` of the given kind."""
    if kind in META_KINDS:
        meta, detail = _meta(source.meta, rng, kind)
        return Mutant(source, kind, detail, meta, source.dataset)
    if kind == "combined":
        data, details = source.dataset, []
        for step in rng.sample(DATASET_KINDS[:-1], rng.randint(2, 3)):
            data, detail = _dataset(data, source, rng, step)
            details.append(f"{step} {detail}")
        return Mutant(source, kind, "; ".join(details), source.meta, data)
    data, detail = _dataset(source.dataset, source, rng, kind)
    return Mutant(source, kind, detail, source.meta, data)


def _dataset(data: bytes, source: Source, rng: random.Random, kind: str) -> tuple[bytes, str]:
    if not data:
        return data, "empty"
    if kind == "flip":
        return _flip(data, rng, _header_end(data, source))
    if kind == "insert":
        return _insert(data, rng, _header_end(data, source))
    if kind == "truncate":
        at = _position(rng, len(data), _header_end(data, source))
        return data[:at], f"cut at {at} of {len(data)}"
    if kind == "length":
        return _length(data, source, rng)
    raise ValueError(f"unknown mutation {kind!r}")


def _position(rng: random.Random, size: int, header_end: int) -> int:
    """A position in [0, size), most often within the header, where parsers look."""
    if size <= 1:
        return 0
    return rng.randrange(min(header_end, size) if rng.random() < 0.75 else size)


def _flip(data: bytes, rng: random.Random, header_end: int) -> tuple[bytes, str]:
    out = bytearray(data)
    spots = sorted(_position(rng, len(out), header_end) for _ in range(rng.randint(1, 8)))
    for at in spots:
        out[at] ^= rng.randint(1, 255)
    return bytes(out), f"{len(spots)} bytes at {spots}"


def _insert(data: bytes, rng: random.Random, header_end: int) -> tuple[bytes, str]:
    at = _position(rng, len(data), header_end)
    size = rng.choice((1, 2, 3, 4, 8, rng.randint(1, 64)))
    if rng.random() < 0.5:
        start = rng.randrange(len(data))  # a piece of the file itself: well-formed headers
        extra = data[start : start + size]
    else:
        extra = bytes(rng.randrange(256) for _ in range(size))
    return data[:at] + extra + data[at:], f"{len(extra)} bytes at {at}"


def _length(data: bytes, source: Source, rng: random.Random) -> tuple[bytes, str]:
    """One element's length field set to a broken value."""
    fields = length_fields(data, source.transfer_syntax)
    if not fields:
        return _flip(data, rng, len(data))
    at, width, value = rng.choice(fields)
    how = rng.choice(_LENGTHS)
    top = 0xFFFF if width == 2 else 0xFFFFFFFF
    new = {
        "undefined": top,
        "huge": top - 1 - rng.randrange(16) * 2,
        "odd": value | 1 if value % 2 == 0 else value + 2,
        "zero": 0,
        "longer": value + rng.randint(1, 64),
        "shorter": max(0, value - rng.randint(1, 64)),
    }[how] & top
    if new == value:
        new = (value + 1) & top
    order = "<" if UID(source.transfer_syntax).is_little_endian else ">"
    packed = struct.pack(order + ("H" if width == 2 else "I"), new)
    return data[:at] + packed + data[at + width :], f"{how}: {value} -> {new} at {at}"


def length_fields(data: bytes, transfer_syntax: str) -> list[tuple[int, int, int]]:
    """(offset, width, value) of the length field of every top-level element pydicom can
    walk before anything goes wrong (none for a deflated dataset)."""
    if transfer_syntax == DEFLATED:
        return []
    uid = UID(transfer_syntax)
    implicit, little = uid.is_implicit_VR, uid.is_little_endian
    out: list[tuple[int, int, int]] = []
    try:
        for elem in data_element_generator(BytesIO(data), implicit, little, defer_size=1):
            if not isinstance(elem, RawDataElement):
                continue  # a sequence pydicom read whole: its length field is not kept
            start = elem.value_tell
            width = 2 if not implicit and elem.VR not in _LONG_VRS else 4
            if start < width:
                break
            raw = data[start - width : start]
            value = int.from_bytes(raw, "little" if little else "big")
            out.append((start - width, width, value))
    except Exception:
        pass  # the walk ends where pydicom stops
    return out


_LONG_VRS = frozenset(
    ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV")
)


def _header_end(data: bytes, source: Source) -> int:
    """Where (7FE0,0010) Pixel Data's header starts, roughly: the first place its tag occurs."""
    little = UID(source.transfer_syntax).is_little_endian
    tag = b"\xe0\x7f\x10\x00" if little else b"\x7f\xe0\x00\x10"
    at = data.find(tag)
    return len(data) if at < 0 else max(at + 12, 16)


def _meta(meta: bytes, rng: random.Random, kind: str) -> tuple[bytes, str]:
    """A File Meta with its group length (0002,0000) broken, or a few of its bytes flipped."""
    if kind == "meta_flip":
        out = bytearray(meta)
        spots = sorted(rng.randrange(132, len(out)) for _ in range(rng.randint(1, 4)))
        for at in spots:
            out[at] ^= rng.randint(1, 255)
        return bytes(out), f"{len(spots)} bytes at {spots}"
    if meta[132:140] != b"\x02\x00\x00\x00UL\x04\x00":
        return meta[:132] + meta[144:], "group length removed"
    (value,) = struct.unpack_from("<I", meta, 140)
    how = rng.choice(("zero", "huge", "odd", "longer", "shorter", "undefined"))
    new = {
        "zero": 0,
        "huge": 0x7FFFFFFE,
        "odd": value | 1 if value % 2 == 0 else value + 2,
        "longer": value + rng.randint(1, 200),
        "shorter": max(0, value - rng.randint(1, 100)),
        "undefined": 0xFFFFFFFF,
    }[how]
    return meta[:140] + struct.pack("<I", new) + meta[144:], f"{how}: {value} -> {new}"
