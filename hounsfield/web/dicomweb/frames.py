"""WADO-RS frames and bulkdata: stored bytes where the client takes them, decoded otherwise."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydicom.uid import ExplicitVRLittleEndian

from hounsfield.archive.bulkdata import Value, find_value, parse_tag_path
from hounsfield.archive.context import Archive
from hounsfield.imaging.pixels import (
    FRAME_MEDIA_TYPES,
    PIXEL_DATA,
    PixelSource,
    native_frame,
    open_source,
    stored_frame,
)
from hounsfield.web.dicomweb import multipart
from hounsfield.web.dicomweb.accept import parse_accept
from hounsfield.web.dicomweb.common import BadRequest, NotAcceptable, find_one
from hounsfield.web.dicomweb.ranges import byte_range
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


def frame_form(src: PixelSource, accept: str | None) -> tuple[str, str, bool]:
    """(part media type, transfer syntax, send stored bytes?) for the client's Accept."""
    stored_type = FRAME_MEDIA_TYPES.get(src.transfer_syntax) if src.encapsulated else None
    for r in parse_accept(accept):
        if not (
            r.multipart
            or r.media_type in (OCTET, "image/*")
            or r.media_type in FRAME_MEDIA_TYPES.values()
        ):
            continue
        ts = r.transfer_syntax
        takes_stored = stored_type and r.part_type != OCTET and r.matches(stored_type)
        if takes_stored and ts in (None, "*", src.transfer_syntax):
            return str(stored_type), src.transfer_syntax, True
        if r.matches(OCTET) and ts in (None, "*", ExplicitVRLittleEndian):
            return OCTET, ExplicitVRLittleEndian, not src.encapsulated
    raise NotAcceptable(
        f"frames are served as {OCTET}"
        + (f" or {stored_type} (stored {src.transfer_syntax})" if stored_type else "")
    )


def _lazy(src: PixelSource, n: int, stored: bool) -> Iterator[bytes]:
    yield stored_frame(src, n - 1) if stored and src.encapsulated else native_frame(src, n - 1)


def frames_response(src: PixelSource, numbers: list[int], accept: str | None) -> Response:
    """The multipart answer with one part per requested frame."""
    for n in numbers:
        if n > src.frames:
            raise BadRequest(f"frame {n} does not exist: the object has {src.frames}")
    media, syntax, stored = frame_form(src, accept)
    boundary = multipart.new_boundary()
    parts = (
        multipart.Part(
            {"Content-Type": f"{media}; transfer-syntax={syntax}"}, _lazy(src, n, stored)
        )
        for n in numbers
    )
    return StreamingResponse(
        multipart.write(parts, boundary), media_type=multipart.content_type(media, boundary)
    )


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
        return StreamingResponse(
            multipart.write([multipart.Part(headers, body)], boundary),
            status_code=status,
            media_type=multipart.content_type(OCTET, boundary),
            headers={"Content-Range": headers["Content-Range"]} if chosen else None,
        )
    if any(r.matches(OCTET) for r in ranges):
        extra = {"Content-Range": headers["Content-Range"]} if chosen else {}
        return StreamingResponse(body, status_code=status, media_type=OCTET, headers=extra)
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
        src = open_source(located.readable())
        return frames_response(src, numbers, request.headers.get("accept"))

    @api.get(instance + "/bulkdata/{tag_path:path}")
    def get_bulkdata(
        request: Request, partition: AtPartition, study: str, series: str, sop: str, tag_path: str
    ) -> Response:
        path = parse_tag_path(tag_path)
        stored = find_one(archive, partition, study, series, sop).readable()
        src = None
        if path == [PIXEL_DATA]:
            src = open_source(stored)
            value = Value(stored, src.offset or 0, src.length)
        else:
            value = find_value(stored, path)
        return bulk_response(
            value, src, request.headers.get("accept"), request.headers.get("range")
        )

    return api
