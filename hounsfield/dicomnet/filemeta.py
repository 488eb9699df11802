"""Where a stored Part-10 file's dataset starts, and what its File Meta says, read from bytes.

pynetdicom finds the start of a file's dataset by reading its File Meta with pydicom before
every C-STORE it sends from a file (`dsutils.split_dataset`). The archive writes a preamble,
"DICM" and a File Meta group whose length is in (0002,0000), so one short read says the same:
the group's elements are walked (explicit VR little endian) up to the first element of
another group, as pydicom does. Anything unusual returns None and is left to pydicom.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

HEAD = 1024  # bytes read first; a File Meta group is usually a few hundred
_MAGIC = 128  # "DICM" after the preamble
_START = _MAGIC + 4
_GROUP_LENGTH = struct.Struct("<HH2sHI")  # (0002,0000) UL, length 4, value
_SHORT = struct.Struct("<HH2sH")  # tag, VR, 2-byte length
_LONG_LENGTH = struct.Struct("<I")
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT"}
_LONG_VRS |= {b"UV"}
_SHORT_VRS = set(b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split())
_WANTED = {2: "sop_class", 3: "sop_instance", 0x10: "transfer_syntax"}


@dataclass(frozen=True)
class FileMeta:
    """What a C-STORE of the file needs from its File Meta."""

    offset: int  # where the dataset starts
    sop_class: str
    sop_instance: str
    transfer_syntax: str


def read_meta(path: Path) -> FileMeta | None:
    """The file's File Meta, or None when it is not laid out as the archive writes files."""
    fd = os.open(path, os.O_RDONLY)
    try:
        head = os.pread(fd, HEAD, 0)
        if len(head) < _START + _GROUP_LENGTH.size or head[_MAGIC:_START] != b"DICM":
            return None
        group, element, vr, size, length = _GROUP_LENGTH.unpack_from(head, _START)
        if (group, element, vr, size) != (2, 0, b"UL", 4):
            return None
        end = _START + _GROUP_LENGTH.size + length + _SHORT.size
        if end > len(head):
            head = os.pread(fd, end, 0)
    finally:
        os.close(fd)
    return parse(head)


def parse(head: bytes) -> FileMeta | None:
    """The File Meta at the start of `head` (preamble included), or None (see `read_meta`)."""
    at, found = _START, {}
    while at + _SHORT.size <= len(head):
        group, element, vr, length = _SHORT.unpack_from(head, at)
        if group != 2:
            break
        at += _SHORT.size
        if vr not in _LONG_VRS and vr not in _SHORT_VRS:
            return None  # pydicom guesses (or refuses) an unknown VR
        if vr in _LONG_VRS:
            if at + 4 > len(head):
                return None
            (length,) = _LONG_LENGTH.unpack_from(head, at)
            at += 4
        if length == 0xFFFFFFFF or at + length > len(head):
            return None
        if element in _WANTED:
            value = head[at : at + length].rstrip(b"\0 ")
            if not value.isascii():
                return None
            found[_WANTED[element]] = value.decode("ascii")
        at += length
    else:
        return None  # the dataset's first tag was not in what was read
    if len(found) < len(_WANTED):
        return None
    return FileMeta(at, found["sop_class"], found["sop_instance"], found["transfer_syntax"])
