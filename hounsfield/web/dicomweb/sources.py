"""Pixel sources of stored files kept while the file is the same one: a multi-frame object's
header (its per-frame attributes can run to megabytes) is read once for all its frames."""

from __future__ import annotations

import os
from pathlib import Path

from hounsfield.archive.file_cache import FileCache, identity
from hounsfield.imaging.pixels import PixelSource, open_source

BUDGET = 32 * 1024 * 1024
# Held in memory, a header takes several times its bytes in the file (pydicom's elements).
EXPANSION = 8


def _header_bytes(src: PixelSource) -> int | None:
    """Where the pixels start in the file; None when they are not read from it in place."""
    if src.in_place:
        return src.offset
    if src.extents:
        return src.extents[0][0][0]
    return None


_SOURCES: FileCache[PixelSource] = FileCache(BUDGET)


def pixel_source(path: Path) -> PixelSource:
    """The pixel source of a stored file, from memory when the file has not changed since.

    Only sources whose pixels stay in the file are kept (frames are read from it by offset):
    one whose Pixel Data pydicom holds would keep a whole object in memory."""
    cached = _SOURCES.get(path, None)
    if cached is not None:
        return cached
    try:
        before = identity(os.stat(path))  # replaced while read: it no longer matches
    except OSError:
        return open_source(path)  # which says what is wrong
    src = open_source(path)
    header = _header_bytes(src)
    if header is not None:
        _SOURCES.put(path, before, None, src, 4096 + header * EXPANSION)
    return src
