"""Read the markers of a JPEG 2000 / HTJ2K codestream: main header facts and tile-parts."""

from __future__ import annotations

import math
from dataclasses import dataclass

SIZ, COD, TLM, SOT, EOC = 0xFF51, 0xFF52, 0xFF55, 0xFF90, 0xFFD9
PROGRESSIONS = ("LRCP", "RLCP", "RPCL", "PCRL", "CPRL")
SMALLEST = 64  # PS3.5 10.18: the lowest resolution of an RPCL codestream is at most 64 pixels


class CodestreamError(ValueError):
    """The bytes are not a codestream whose main header can be read."""


@dataclass(frozen=True)
class MainHeader:
    """What the main header says about the image and how it is laid out."""

    width: int
    height: int
    tiles: int
    progression: str
    levels: int  # wavelet decomposition levels
    reversible: bool
    tile_parts: tuple[int, ...]  # tile-part lengths from the TLM segments; () without TLM
    length: int  # bytes before the first tile-part

    @property
    def smallest(self) -> int:
        """The longer side of the lowest resolution, in pixels."""
        scale = 1 << self.levels
        return max(-(-self.width // scale), -(-self.height // scale))

    def resolution_end(self, skip: int) -> int | None:
        """Bytes of the codestream that hold every resolution but the `skip` highest, or None
        unless it has one tile, RPCL order and, from TLM, one tile-part per resolution."""
        if (
            self.tiles != 1
            or self.progression != "RPCL"
            or len(self.tile_parts) != self.levels + 1
            or not 0 <= skip <= self.levels
        ):
            return None
        return self.length + sum(self.tile_parts[: self.levels + 1 - skip])


def _u(data: bytes, pos: int, size: int) -> int:
    return int.from_bytes(data[pos : pos + size], "big")


def header_length(data: bytes) -> int | None:
    """Where the first tile-part starts, or None when `data` ends inside the main header."""
    if data[:2] != b"\xff\x4f":
        raise CodestreamError("no SOC marker: not a JPEG 2000 codestream")
    pos = 2
    while pos + 4 <= len(data):
        marker = _u(data, pos, 2)
        if marker == SOT:
            return pos
        if marker >> 8 != 0xFF:
            raise CodestreamError(f"no marker at byte {pos}")
        pos += 2 + _u(data, pos + 2, 2)
    return None


def main_header(data: bytes) -> MainHeader:
    """The main header of a codestream (`data` may stop after it)."""
    end = header_length(data)
    if end is None:
        raise CodestreamError("the codestream ends inside its main header")
    fields: dict[str, object] = {}
    lengths: list[int] = []
    pos = 2
    while pos < end:
        marker, size = _u(data, pos, 2), _u(data, pos + 2, 2)
        body = data[pos + 4 : pos + 2 + size]
        if marker == SIZ:
            width, height = _u(body, 2, 4) - _u(body, 10, 4), _u(body, 6, 4) - _u(body, 14, 4)
            tile_w, tile_h = _u(body, 18, 4), _u(body, 22, 4)
            tiles_x = math.ceil((_u(body, 2, 4) - _u(body, 26, 4)) / max(tile_w, 1))
            tiles_y = math.ceil((_u(body, 6, 4) - _u(body, 30, 4)) / max(tile_h, 1))
            fields.update(width=width, height=height, tiles=tiles_x * tiles_y)
        elif marker == COD:  # Scod, progression, layers (2), MCT, levels, xcb, ycb, style, wavelet
            fields.update(
                progression=PROGRESSIONS[body[1]] if body[1] < len(PROGRESSIONS) else "?",
                levels=body[5],
                reversible=body[9] == 1,
            )
        elif marker == TLM:
            lengths += _tlm_lengths(body)
        pos += 2 + size
    if "width" not in fields or "levels" not in fields:
        raise CodestreamError("the main header has no SIZ or no COD segment")
    return MainHeader(tile_parts=tuple(lengths), length=end, **fields)  # type: ignore[arg-type]


def _tlm_lengths(body: bytes) -> list[int]:
    """Tile-part lengths of one TLM segment (Ztlm, Stlm, then Ttlm/Ptlm pairs)."""
    stlm = body[1]
    index_size = (0, 1, 2, 0)[(stlm >> 4) & 3]
    length_size = 4 if stlm & 0x40 else 2
    step = index_size + length_size
    return [_u(body, p + index_size, length_size) for p in range(2, len(body) - step + 1, step)]


def tile_parts(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, length, index within its tile) of every tile-part, from the SOT markers."""
    pos = header_length(data)
    out: list[tuple[int, int, int]] = []
    while pos is not None and pos + 12 <= len(data) and _u(data, pos, 2) == SOT:
        psot = _u(data, pos + 6, 4)
        if not psot:  # the last tile-part may run to EOC
            psot = len(data) - pos - (2 if data[-2:] == b"\xff\xd9" else 0)
        out.append((pos, psot, data[pos + 10]))
        pos += psot
    return out


def rpcl_problems(data: bytes) -> list[str]:
    """How a codestream falls short of HTJ2K Lossless RPCL (PS3.5 10.18); [] when it does not."""
    try:
        head = main_header(data)
    except CodestreamError as exc:
        return [str(exc)]
    problems = []
    if head.progression != "RPCL":
        problems.append(f"progression order {head.progression}, not RPCL")
    if not head.reversible:
        problems.append("irreversible wavelet")
    if not head.tile_parts:
        problems.append("no TLM marker")
    if head.smallest > SMALLEST:
        problems.append(f"{head.levels} decomposition levels leave {head.smallest} pixels")
    parts = tile_parts(data)
    if [p[2] for p in parts] != list(range(head.levels + 1)):
        problems.append(f"{len(parts)} tile-parts for {head.levels + 1} resolutions")
    elif head.tile_parts and [p[1] for p in parts] != list(head.tile_parts):
        problems.append("the TLM lengths differ from the tile-parts")
    return problems
