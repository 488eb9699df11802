"""HTTP Range (bytes=...) parsing for bulkdata: one range, clamped to the value."""

from __future__ import annotations

import re

from hounsfield.errors import ArchiveError

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


class RangeNotSatisfiable(ArchiveError):
    """The requested byte range lies outside the value."""

    http_status = 416


def byte_range(header: str | None, length: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single-range Range header, None when absent or whole."""
    if not header:
        return None
    m = _RANGE.match(header)
    if not m or (not m.group(1) and not m.group(2)):
        raise RangeNotSatisfiable(f"unsupported Range {header!r}: use bytes=start-end")
    if m.group(1):
        start = int(m.group(1))
        end = int(m.group(2)) + 1 if m.group(2) else length
    else:
        start, end = max(0, length - int(m.group(2))), length
    end = min(end, length)
    if start >= length or start >= end:
        raise RangeNotSatisfiable(f"Range {header!r} is outside the {length}-byte value")
    return (start, end)
