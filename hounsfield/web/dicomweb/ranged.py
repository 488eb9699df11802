"""Bodies of known-length pieces, the same bytes every time: whole, by byte range, or 304."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from fastapi import Response

from hounsfield.web.batched import streamed
from hounsfield.web.dicomweb import multipart
from hounsfield.web.dicomweb.ranges import RangeNotSatisfiable, byte_range
from hounsfield.web.errors import error_response

# A body up to this size is answered whole: a streamed one crosses from a worker thread to the
# event loop once per piece (a frame: its part header, its bytes, the closing delimiter).
INLINE = 1 << 20


@dataclass(frozen=True)
class Piece:
    """Some bytes of a body: given, or a slice of a file."""

    length: int
    data: bytes = b""
    path: Path | None = None
    offset: int = 0

    def read(self, start: int, end: int) -> Iterator[bytes]:
        """The piece's bytes from `start` to `end` (exclusive), in chunks."""
        if self.path is None:
            yield self.data[start:end]
        else:
            yield from multipart.file_chunks(self.path, self.offset + start, end - start)


def given(data: bytes) -> Piece:
    """A piece holding `data`."""
    return Piece(len(data), data)


def from_file(path: Path, offset: int, length: int) -> Piece:
    """A piece that is `length` bytes of a file from `offset`."""
    return Piece(length, path=path, offset=offset)


def multipart_pieces(parts: list[tuple[dict[str, str], list[Piece]]], boundary: str) -> list[Piece]:
    """The pieces of a multipart/related body framing each part's pieces, as multipart.write."""
    out: list[Piece] = []
    for index, (headers, body) in enumerate(parts):
        out.append(given((b"\r\n" if index else b"") + multipart.opening(headers, boundary)))
        out += body
    out.append(given(b"\r\n" + multipart.closing(boundary)))
    return out


def strong_etag(*identity: object) -> str:
    """A strong entity tag for the body that `identity` determines."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in identity).encode()).hexdigest()
    return f'"{digest[:40]}"'


def _listed(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def slices(pieces: list[Piece], start: int, end: int) -> Iterator[bytes]:
    """The bytes of the body the pieces make, from `start` to `end` (exclusive)."""
    at = 0
    for piece in pieces:
        lo, hi = max(start, at), min(end, at + piece.length)
        if lo < hi:
            yield from piece.read(lo - at, hi - at)
        at += piece.length


def ranged_response(
    pieces: list[Piece], media_type: str, etag: str, request: Mapping[str, str]
) -> Response:
    """200 with Content-Length, 206 for one `Range` (unless `If-Range` names another tag),
    304 when `If-None-Match` names this one; every answer carries the ETag."""
    total = sum(p.length for p in pieces)
    headers = {"ETag": etag, "Accept-Ranges": "bytes"}
    if _listed(request.get("if-none-match") or "", etag):
        return Response(status_code=304, headers=headers)
    wanted = request.get("range")
    if_range = request.get("if-range")
    try:
        chosen = byte_range(wanted if not if_range or if_range == etag else None, total)
    except RangeNotSatisfiable as exc:
        refused = error_response(exc)
        refused.headers["Content-Range"] = f"bytes */{total}"
        return refused
    start, end = chosen or (0, total)
    headers["Content-Length"] = str(end - start)
    if chosen:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
    status = 206 if chosen else 200
    if end - start <= INLINE:  # read here, in the request's worker thread; sent in one piece
        body = b"".join(slices(pieces, start, end))
        return Response(body, status_code=status, media_type=media_type, headers=headers)
    return streamed(slices(pieces, start, end), media_type, status, headers)
