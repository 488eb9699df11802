"""DICOM JSON (PS3.18 F) of a stored explicit-VR header, written straight from its bytes as
pydicom's `to_json_dict` writes it; an element it cannot vouch for is converted by pydicom."""

from __future__ import annotations

import base64
import re
import struct
from typing import Any

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.tag import BaseTag

LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
SHORT_VRS = frozenset(
    {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL"}
    | {"SS", "ST", "TM", "UI", "UL", "US"}
)
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
SPLIT_VRS = frozenset({"AS", "CS", "DA", "DT", "TM", "UI"})  # stripped whole, then split
TEXT_VRS = frozenset({"SH", "LO", "UC"})  # split, then each value stripped on the right
SINGLE_VRS = frozenset({"LT", "ST", "UT", "UR"})  # one value, stripped on the right
STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI"}
    | {"UR", "UT"}
)
NUMBERS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "UV": "Q", "SV": "q"}
CONTROLS = re.compile(rb"[\x00-\x1f\x7f]")  # ESC among them: an ISO 2022 escape
TEXT_CONTROLS = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # LT, ST, UT: CR LF FF TAB
_UNITS = {code: struct.calcsize("<" + code) for code in "HhLlfdQq"}  # standard sizes
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
CHARSET = 0x00080005
MAX_DEPTH = 16


# Each VR's bytes: its name and whether its length takes 4 bytes (after 2 reserved ones).
_VRS = {vr.encode(): (vr, vr in LONG_VRS) for vr in (LONG_VRS | SHORT_VRS) - {"UN"}}
_KEYS: dict[int, str] = {}  # tag -> "GGGGEEEE", as met


def _key(tag: int) -> str:
    key = _KEYS[tag] = f"{tag:08X}"
    if len(_KEYS) > 100_000:  # private tags of every kind: keep the memo bounded
        _KEYS.clear()
    return key


class Unusual(Exception):
    """The bytes hold something this reader leaves to pydicom (for the whole header)."""


def header_json(
    header: bytes, little_endian: bool, bulk_prefix: str, threshold: int
) -> dict[str, Any]:
    """The header's elements as DICOM JSON keyed by tag, binary values longer than
    `threshold` base64 characters as BulkDataURIs under `bulk_prefix`. A top-level element
    pydicom cannot convert either is left out. Raises Unusual (or struct.error on a header
    cut short): pydicom shall read the whole header."""
    reader = _Reader(header, little_endian, bulk_prefix, threshold)
    out, end = reader.elements(0, len(header), "", 0)
    if end != len(header):
        raise Unusual("elements do not end where the header does")
    return out


class _Reader:
    def __init__(self, data: bytes, little: bool, prefix: str, threshold: int) -> None:
        order = "<" if little else ">"
        self.data, self.little, self.order = data, little, order
        self.prefix, self.threshold = prefix, threshold
        self.inline_limit = (threshold // 4) * 3
        self.encodings = [default_encoding]
        self._head = struct.Struct(order + "HH2sH").unpack_from
        self._long = struct.Struct(order + "L").unpack_from
        self._item = struct.Struct(order + "HHL").unpack_from

    def elements(
        self, pos: int, end: int, path: str, depth: int, delimited: bool = False
    ) -> tuple[dict[str, Any], int]:
        """The elements from pos up to end (delimited: through the Item Delimitation Item
        that ends them), and where they end."""
        out: dict[str, Any] = {}
        data, last = self.data, -1
        while pos < end:
            group, elem, raw_vr, length = self._head(data, pos)
            tag = group << 16 | elem
            if delimited and tag == ITEM_END:
                return out, pos + 8
            if tag <= last or group == 0xFFFE:
                raise Unusual(f"element {tag:08X} out of order")
            last = tag
            known = _VRS.get(raw_vr)
            if known is None:  # UN too: pydicom looks the VR up, of private tags by creator
                raise Unusual(f"element {tag:08X} of VR {raw_vr!r}")
            vr, long = known
            if long:
                (length,) = self._long(data, pos + 8)
                start = pos + 12
            else:
                start = pos + 8
            key = _KEYS.get(tag) or _key(tag)
            if vr == "SQ":
                out[key], pos = self.sequence(start, length, f"{path}{key}/", depth)
                continue
            if length == UNDEFINED:
                raise Unusual(f"undefined length {key}")
            pos = start + length
            if pos > end:
                raise Unusual(f"element {key} runs past its end")
            value = data[start:pos]
            if tag == CHARSET:
                if path:
                    raise Unusual("a character set inside a sequence item")
                try:
                    self.encodings = self._encodings(value)
                except Exception as exc:  # a broken character set: pydicom decides
                    raise Unusual(f"character set {value!r}") from exc
            try:
                out[key] = self.value(vr, value, path + key)
            except Unusual:
                try:
                    out[key] = self.slow(tag, vr, value, path + key)
                except Exception as exc:  # pydicom leaves out what it cannot convert
                    if path:
                        raise Unusual(f"item element {key}: {exc}") from exc
        if delimited:
            raise Unusual("item without its delimiter")
        return out, pos

    def sequence(self, pos: int, length: int, path: str, depth: int) -> tuple[dict[str, Any], int]:
        """A sequence's items from pos, and where it ends."""
        if depth >= MAX_DEPTH:
            raise Unusual("sequences nested too deep")
        end = len(self.data) if length == UNDEFINED else pos + length
        items: list[dict[str, Any]] = []
        while pos < end:
            group, elem, item_length = self._item(self.data, pos)
            tag = group << 16 | elem
            pos += 8
            if tag == SEQUENCE_END and length == UNDEFINED:
                return {"vr": "SQ", "Value": items}, pos
            if tag != ITEM:
                raise Unusual("not an item")
            item_path = f"{path}{len(items)}/"
            if item_length == UNDEFINED:
                content, pos = self.elements(pos, len(self.data), item_path, depth + 1, True)
            else:
                content, pos = self.elements(pos, pos + item_length, item_path, depth + 1)
            items.append(content)
        if length == UNDEFINED or pos != end:
            raise Unusual("sequence runs past its end")
        return {"vr": "SQ", "Value": items}, pos

    def _raw(self, tag: int, vr: str, value: bytes) -> RawDataElement:
        return RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, self.little)

    def _encodings(self, value: bytes) -> list[str]:
        names = convert_raw_data_element(self._raw(CHARSET, "CS", value)).value
        return list(convert_encodings(names))

    def slow(self, tag: int, vr: str, value: bytes, path: str) -> dict[str, Any]:
        """pydicom's conversion of one element, with the dataset's character set."""
        elem = convert_raw_data_element(self._raw(tag, vr, value), encoding=self.encodings)
        return elem.to_json_dict(lambda _e: self.prefix + path, self.threshold)

    def value(self, vr: str, value: bytes, path: str) -> dict[str, Any]:
        """One element's JSON (Unusual: pydicom shall convert it)."""
        if vr in STRING_VRS:
            if not value.isascii():
                raise Unusual("not plain ASCII")  # the character set decides: pydicom's work
            controls = TEXT_CONTROLS if vr in SINGLE_VRS else CONTROLS
            if controls.search(value.rstrip(b"\0")):
                raise Unusual("control characters")  # pydicom strips some, the charset others
            values = _strings(vr, value.decode("ascii"))
            return {"vr": vr, "Value": values} if values else {"vr": vr}
        out: dict[str, Any] = {"vr": vr}
        if vr in BINARY_VRS:
            if value:
                if len(value) > self.inline_limit:
                    out["BulkDataURI"] = self.prefix + path
                else:
                    out["InlineBinary"] = base64.b64encode(value).decode()
            return out
        code = NUMBERS.get(vr, "H")  # AT: pairs of unsigned shorts
        unit = _UNITS[code]
        if len(value) % (4 if vr == "AT" else unit):
            raise Unusual("a length that is not a multiple of the value size")
        if value:
            numbers = struct.unpack(f"{self.order}{len(value) // unit}{code}", value)
            if vr == "AT":
                out["Value"] = [
                    f"{numbers[i]:04X}{numbers[i + 1]:04X}" for i in range(0, len(numbers), 2)
                ]
            else:
                out["Value"] = [float(n) for n in numbers] if code in "fd" else list(numbers)
        return out


def _strings(vr: str, text: str) -> list[Any]:
    """The values of a string VR; empty when the element is empty."""
    if vr in SINGLE_VRS:
        single = text.rstrip("\0 ")
        return [single] if single else []
    if vr == "PN":
        return _names(text.rstrip("\0 "))
    if vr == "IS":
        return _numbers(text, int)
    if vr == "DS":
        return _numbers(text, float)
    if vr in SPLIT_VRS:
        parts = text.rstrip(" \0").split("\\")
    elif vr == "AE":
        parts = [p.strip() for p in text.split("\\")]
    elif vr in TEXT_VRS:
        parts = [p.rstrip("\0 ") for p in text.split("\\")]
    else:
        raise Unusual(vr)
    return [] if parts == [""] else parts


def _names(text: str) -> list[dict[str, str]]:
    if not text:
        return []
    out = []
    for name in text.split("\\"):
        groups = name.split("=")
        if len(groups) > 3:
            raise Unusual("more than three name groups")
        comps = {"Alphabetic": groups[0]}
        if len(groups) > 1:
            comps["Ideographic"] = groups[1]
        if len(groups) > 2:
            comps["Phonetic"] = groups[2]
        out.append(comps)
    return out


def _numbers(text: str, kind: type[int] | type[float]) -> list[Any]:
    stripped = text.rstrip(" \0")
    if not stripped:
        return []
    out = []
    for part in stripped.split("\\"):
        part = part.strip(" ")
        if not part or part.strip("0123456789+-.eE"):
            raise Unusual("an empty or unusual number")
        try:
            out.append(kind(part))
        except ValueError as exc:
            raise Unusual("not a number") from exc
    return out
