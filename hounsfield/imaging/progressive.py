"""Read from the file only the leading resolutions of an RPCL frame with TLM markers."""

from __future__ import annotations

from dataclasses import dataclass

from hounsfield.imaging.codestream import CodestreamError, header_length, main_header
from hounsfield.imaging.pixels import PixelSource, read_extents

FIRST_READ = 16 * 1024  # enough for any usual main header


@dataclass(frozen=True)
class Prefix:
    """The start of a codestream that decodes at `skip` levels below full size."""

    data: bytes  # closed with an EOC marker
    skip: int
    whole: int  # bytes of the whole codestream


def resolution_prefix(src: PixelSource, index: int, skip: int) -> Prefix | None:
    """The bytes of frame `index` needed to decode it `skip` levels smaller (fewer when the
    codestream has fewer levels), read alone; None unless the frame is one single-tile RPCL
    codestream whose TLM lists one tile-part per resolution."""
    if src.extents is None or len(src.extents[index]) != 1 or skip <= 0:
        return None
    (fragment,) = src.extents[index]
    head = read_extents(src.path, (fragment,), FIRST_READ)
    try:
        if header_length(head) is None:
            head = read_extents(src.path, (fragment,))
        header = main_header(head)
    except CodestreamError:
        return None
    skip = min(skip, header.levels)
    end = header.resolution_end(skip)
    if not skip or end is None or end > fragment[1]:
        return None
    data = head[:end] if end <= len(head) else read_extents(src.path, (fragment,), end)
    return Prefix(data + b"\xff\xd9", skip, fragment[1])
