"""A fast walk over a dataset's top-level elements that keeps a few, as pydicom would read them."""

from __future__ import annotations

import struct
from typing import NamedTuple, cast

from pydicom import config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement, empty_value_for_VR
from pydicom.tag import BaseTag

# Explicit VRs with 2 reserved bytes and a 4-byte length, and those with a 2-byte length.
LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
SHORT_VRS = frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split())
UNDEFINED = 0xFFFFFFFF
DELIMITER_GROUP = 0xFFFE
ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQUENCE_END = 0xFFFEE0DD
HEADER_END = 0x7FE00008  # the header stops at the first top-level tag from here on
MAX_DEPTH = 16


class Scan(NamedTuple):
    """The wanted top-level elements and the offset where the header ends."""

    elements: dict[BaseTag, RawDataElement]
    end: int


class _Decline(Exception):
    """The bytes are unusual: pydicom shall read them."""


class _Codec:
    """Element headers in one VR encoding and byte order."""

    def __init__(self, implicit: bool, little: bool) -> None:
        order = "<" if little else ">"
        self.implicit = implicit
        self.little = little
        self._tagged = struct.Struct(order + "HHL").unpack_from
        self._explicit = struct.Struct(order + "HH2sH").unpack_from
        self._length = struct.Struct(order + "L").unpack_from

    def header(self, data: bytes, pos: int) -> tuple[int, bytes | None, int, int]:
        """Tag, VR (None when implicit), length and value offset of the element at pos."""
        if self.implicit:
            group, elem, length = self._tagged(data, pos)
            return group << 16 | elem, None, length, pos + 8
        group, elem, vr, length = self._explicit(data, pos)
        if vr in SHORT_VRS:
            return group << 16 | elem, vr, length, pos + 8
        if vr in LONG_VRS:
            return group << 16 | elem, vr, self._length(data, pos + 8)[0], pos + 12
        if group == DELIMITER_GROUP:  # delimiters have no VR; pydicom reads them as implicit
            group, elem, length = self._tagged(data, pos)
            return group << 16 | elem, None, length, pos + 8
        raise _Decline  # pydicom guesses about unknown VRs

    def item(self, data: bytes, pos: int) -> tuple[int, int]:
        """Tag and length of the item or delimiter header at pos."""
        group, elem, length = self._tagged(data, pos)
        return group << 16 | elem, length


_CODECS = {(i, le): _Codec(i, le) for i in (False, True) for le in (False, True)}


def scan(
    data: bytes, implicit_vr: bool, little_endian: bool, wanted: frozenset[int]
) -> Scan | None:
    """The wanted top-level elements as pydicom's read_dataset would give them, and the
    offset of the first top-level element from (7FE0,0008) on (else len(data)).

    None when the bytes hold anything unusual (truncation, unknown VRs, tags out of order,
    no element at all, ...): pydicom's heuristics and errors shall handle those."""
    if _looks_implicit(data, 0) is not implicit_vr:
        return None  # pydicom would switch the VR encoding (or the data is too short)
    try:
        return _scan(data, _CODECS[implicit_vr, little_endian], wanted)
    except (_Decline, struct.error):
        return None


def _scan(data: bytes, codec: _Codec, wanted: frozenset[int]) -> Scan:
    elements: dict[BaseTag, RawDataElement] = {}
    header = codec.header
    size = len(data)
    pos, last = 0, -1
    while pos < size:
        tag, vr, length, start = header(data, pos)
        if tag >= HEADER_END:
            if last < 0 or tag >> 16 == DELIMITER_GROUP:
                raise _Decline
            return Scan(elements, pos)
        if tag <= last:
            raise _Decline
        last = tag
        if length == UNDEFINED:
            if tag in wanted:
                raise _Decline
            pos = _skip_undefined(data, start, tag, vr, codec, 1)
            continue
        pos = start + length
        if pos > size:
            raise _Decline
        if tag in wanted:
            elements[BaseTag(tag)] = _raw(data, tag, vr, length, start, codec)
    if last < 0:
        raise _Decline
    return Scan(elements, size)


def _raw(
    data: bytes, tag: int, vr: bytes | None, length: int, start: int, codec: _Codec
) -> RawDataElement:
    if vr == b"SQ":
        raise _Decline  # pydicom converts a sequence with the whole dataset as context
    name = None if vr is None else vr.decode("ascii")
    value = data[start : start + length] if length else empty_value_for_VR(name, raw=True)
    return RawDataElement(
        BaseTag(tag),
        name,
        length,
        cast(bytes | None, value),
        start,
        codec.implicit,
        codec.little,
    )


def tail_fits(data: bytes, pos: int, implicit_vr: bool, little_endian: bool) -> bool:
    """Whether the top-level elements from pos on (pixel data, padding, signatures) walk to
    the end of data as pydicom reads them; False also when the bytes are unusual."""
    codec = _CODECS[implicit_vr, little_endian]
    size = len(data)
    try:
        while pos + 8 <= size:  # pydicom ends a dataset at fewer than 8 bytes
            tag, vr, length, start = codec.header(data, pos)
            if length == UNDEFINED:
                pos = _skip_undefined(data, start, tag, vr, codec, 1)
            else:
                pos = start + length
            if pos > size:
                return False
    except (_Decline, struct.error):
        return False
    return True


def _looks_implicit(data: bytes, pos: int) -> bool | None:
    """pydicom's guess from the VR bytes of the element at pos (None: too short to guess)."""
    if pos + 6 > len(data):
        return None
    return not (0x40 < data[pos + 4] < 0x5B and 0x40 < data[pos + 5] < 0x5B)


def _skip_undefined(
    data: bytes, pos: int, tag: int, vr: bytes | None, codec: _Codec, depth: int
) -> int:
    """The end of the undefined-length element whose value starts at pos."""
    if _is_sequence(data, pos, tag, vr, codec):
        return _skip_sequence(data, pos, codec, depth)
    return _skip_fragments(data, pos, codec)


def _is_sequence(data: bytes, pos: int, tag: int, vr: bytes | None, codec: _Codec) -> bool:
    """Whether pydicom reads this undefined-length value as a sequence."""
    if vr == b"UN" and config.settings.infer_sq_for_un_vr:
        return True  # PS3.5 6.2.2
    if vr is None or (vr == b"UN" and config.replace_un_with_known_vr):
        try:
            return dictionary_VR(tag) == "SQ"
        except KeyError:
            return codec.item(data, pos)[0] == ITEM
    return vr == b"SQ"


def _skip_sequence(data: bytes, pos: int, codec: _Codec, depth: int) -> int:
    """The end of an undefined-length sequence whose first item starts at pos."""
    if depth > MAX_DEPTH:
        raise _Decline
    while True:
        tag, length = codec.item(data, pos)
        pos += 8
        if tag == SEQUENCE_END and length == 0:
            return pos
        if tag != ITEM:
            raise _Decline
        pos = _skip_item(data, pos, length, codec, depth + 1)


def _skip_item(data: bytes, pos: int, length: int, codec: _Codec, depth: int) -> int:
    """The end of the item whose elements start at pos, walked as pydicom walks it."""
    if not codec.implicit and _looks_implicit(data, pos):
        codec = _CODECS[True, codec.little]  # pydicom accepts implicit VR items here
    if length == UNDEFINED:
        return _walk(data, pos, None, codec, depth)
    end = pos + length
    if end > len(data) or _walk(data, pos, end, codec, depth) != end:
        raise _Decline
    return end


def _walk(data: bytes, pos: int, end: int | None, codec: _Codec, depth: int) -> int:
    """Walk an item's elements from pos to end (None: through its Item Delimitation Item)."""
    limit = len(data) if end is None else end
    while end is None or pos < end:
        tag, vr, length, start = codec.header(data, pos)
        if tag >> 16 == DELIMITER_GROUP:
            if tag != ITEM_END or end is not None or length != 0:
                raise _Decline
            return start
        if length == UNDEFINED:
            pos = _skip_undefined(data, start, tag, vr, codec, depth)
            continue
        pos = start + length
        if pos > limit:
            raise _Decline
    return pos


def _skip_fragments(data: bytes, pos: int, codec: _Codec) -> int:
    """The end of an undefined-length value made of items (encapsulated data): pydicom
    jumps from item to item up to the Sequence Delimitation Item."""
    while True:
        tag, length = codec.item(data, pos)
        if tag == SEQUENCE_END:
            return pos + 8
        if tag != ITEM:
            raise _Decline
        pos += 8 + length
        if pos > len(data):
            raise _Decline
