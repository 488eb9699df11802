"""WADO-RS frames and bulkdata: stored bytes where the client takes them (by byte range too),
decoded otherwise."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from pydicom.uid import ExplicitVRLittleEndian

from hounsfield.archive.bulkdata import Value, find_value, parse_tag_path
from hounsfield.archive.context import Archive
from hounsfield.imaging.pixels import (
    FRAME_MEDIA_TYPES,
    PIXEL_DATA,
    PixelSource,
    native_frame,
    stored_frame,
)
from hounsfield.web.batched import streamed
from hounsfield.web.dicomweb import multipart
from hounsfield.web.dicomweb.accept import parse_accept
from hounsfield.web.dicomweb.common import BadRequest, NotAcceptable, find_one
from hounsfield.web.dicomweb.ranged import (
    Piece,
    from_file,
    given,
    multipart_pieces,
    ranged_response,
    strong_etag,
)
from hounsfield.web.dicomweb.ranges import byte_range
from hounsfield.web.dicomweb.sources import pixel_source
from hounsfield.web.dicomweb.tenant import AtPartition

OCTET = "application/octet-stream"


def frame_numbers(text: str) -> list[int]:
    """'1,3,5' -> [1, 3, 5] (1-based, as in the URL)."""
    try:
        numbers = [int(p) for p in text.split(",") if p.strip()]
    except ValueError as exc:
        raise BadRequest(f"frame list {text!r} must be comma-separated numbers") from exc
    if not numbers or any(n < 1 for n in numbers):
        raise BadRequest(f"frame numbers start at 1, got {text!r}")
    return numbers


@dataclass(frozen=True)
class FrameForm:
    """How frames travel: part media type, transfer syntax, stored bytes or decoded, and
    whether the client asked for a single-part body."""

    media_type: str
    transfer_syntax: str
    stored: bool
    single: bool

    @property
    def part_type(self) -> str:
        """The Content-Type of a part (or of a single-part body)."""
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax}"


def frame_form(src: PixelSource, accept: str | None) -> FrameForm:
    """How to send `src`'s frames to a client with this Accept; `transfer-syntax=*` and the
    stored syntax both take the stored bytes, also as application/octet-stream."""
    stored_type = FRAME_MEDIA_TYPES.get(src.transfer_syntax) if src.encapsulated else None
    for r in parse_accept(accept):
        if not (
            r.multipart
            or r.media_type in (OCTET, "image/*")
            or r.media_type in FRAME_MEDIA_TYPES.values()
        ):
            continue
        ts, single = r.transfer_syntax, not r.multipart
        takes_stored = stored_type and r.part_type != OCTET and r.matches(stored_type)
        if takes_stored and ts in (None, "*", src.transfer_syntax):
            return FrameForm(str(stored_type), src.transfer_syntax, True, single)
        if not r.matches(OCTET):
            continue
        if src.encapsulated and ts in ("*", src.transfer_syntax):
            return FrameForm(OCTET, src.transfer_syntax, True, single)
        if ts in (None, "*", ExplicitVRLittleEndian):
            return FrameForm(OCTET, ExplicitVRLittleEndian, not src.encapsulated, single)
    raise NotAcceptable(
        f"frames are served as {OCTET}"
        + (f" or {stored_type} (stored {src.transfer_syntax})" if stored_type else "")
    )


def frame_pieces(src: PixelSource, index: int, form: FrameForm) -> list[Piece] | None:
    """Frame `index` (0-based) as pieces of a body; None when it must be decoded first."""
    if not form.stored:
        return None
    if src.extents is not None:
        return [from_file(src.path, offset, length) for offset, length in src.extents[index]]
    if src.in_place and src.offset is not None:
        size = src.frame_size
        return [from_file(src.path, src.offset + index * size, size)]
    frame = stored_frame(src, index) if src.encapsulated else native_frame(src, index)
    return [given(frame)]


def _decoded(src: PixelSource, n: int) -> Iterator[bytes]:
    yield native_frame(src, n - 1)


def frames_response(
    src: PixelSource,
    numbers: list[int],
    accept: str | None,
    request: Mapping[str, str] | None = None,
) -> Response:
    """The requested frames: one multipart part each, or a single-part body when the client
    asked for one frame that way. Stored bytes have a strong ETag and answer `Range` over the
    whole body, identical from one request to the next; decoded frames are streamed."""
    for n in numbers:
        if n > src.frames:
            raise BadRequest(f"frame {n} does not exist: the object has {src.frames}")
    form = frame_form(src, accept)
    single = form.single and len(numbers) == 1
    size = src.path.stat().st_size
    etag = strong_etag("frames", src.path.name, size, numbers, form.part_type, single)
    boundary = etag.strip('"')[:32]
    media = (
        form.part_type
        if single
        else multipart.content_type(form.media_type, boundary, form.transfer_syntax)
    )
    bodies = [frame_pieces(src, n - 1, form) for n in numbers]
    if all(body is not None for body in bodies):
        pieces = (
            [p for body in bodies for p in body or []]
            if single
            else multipart_pieces(
                [({"Content-Type": form.part_type}, body or []) for body in bodies], boundary
            )
        )
        return ranged_response(pieces, media, etag, request or {})
    if single:
        return streamed(_decoded(src, numbers[0]), media)
    parts = (multipart.Part({"Content-Type": form.part_type}, _decoded(src, n)) for n in numbers)
    return streamed(multipart.write(parts, boundary), media)


def bulk_response(
    value: Value, src: PixelSource | None, accept: str | None, range_header: str | None
) -> Response:
    """A bulk value as one octet-stream part (or the compressed frames of encapsulated pixels)."""
    if src is not None and src.encapsulated:
        return frames_response(src, list(range(1, src.frames + 1)), accept or "*/*")
    if src is not None and not src.in_place:
        data = b"".join(native_frame(src, i) for i in range(src.frames))
        value = Value(value.path, 0, len(data), data)
    chosen = byte_range(range_header, value.length)
    start, end = chosen or (0, value.length)
    headers = {"Content-Type": OCTET}
    if chosen:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{value.length}"
    if value.data is not None:
        body: Iterator[bytes] = iter([value.data[start:end]])
    else:
        body = multipart.file_chunks(value.path, value.offset + start, end - start)
    status = 206 if chosen else 200
    ranges = parse_accept(accept)
    if any(r.multipart for r in ranges):
        boundary = multipart.new_boundary()
        return streamed(
            multipart.write([multipart.Part(headers, body)], boundary),
            multipart.content_type(OCTET, boundary),
            status,
            {"Content-Range": headers["Content-Range"]} if chosen else None,
        )
    if any(r.matches(OCTET) for r in ranges):
        extra = {"Content-Range": headers["Content-Range"]} if chosen else {}
        return streamed(body, OCTET, status, extra)
    raise NotAcceptable(f"bulk data is served as {OCTET}")


def router(archive: Archive) -> APIRouter:
    """The frames and bulkdata routes."""
    api = APIRouter()
    instance = "/studies/{study}/series/{series}/instances/{sop}"

    @api.get(instance + "/frames/{frames}")
    def get_frames(
        request: Request, partition: AtPartition, study: str, series: str, sop: str, frames: str
    ) -> Response:
        numbers = frame_numbers(frames)
        located = find_one(archive, partition, study, series, sop)
        src = pixel_source(located.readable())
        accept = request.query_params.get("accept") or request.headers.get("accept")
        return frames_response(src, numbers, accept, request.headers)

    @api.get(instance + "/bulkdata/{tag_path:path}")
    def get_bulkdata(
        request: Request, partition: AtPartition, study: str, series: str, sop: str, tag_path: str
    ) -> Response:
        path = parse_tag_path(tag_path)
        stored = find_one(archive, partition, study, series, sop).readable()
        src = None
        if path == [PIXEL_DATA]:
            src = pixel_source(stored)
            value = Value(stored, src.offset or 0, src.length)
        else:
            value = find_value(stored, path)
        return bulk_response(
            value, src, request.headers.get("accept"), request.headers.get("range")
        )

    return api
