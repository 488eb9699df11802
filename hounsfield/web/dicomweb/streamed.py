"""The parts of a WADO-RS answer: which syntax each object goes in, and its bytes."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from fastapi.responses import StreamingResponse
from pydicom.uid import ExplicitVRLittleEndian

from hounsfield.archive.query import Located
from hounsfield.imaging.transcode import choose, transcode
from hounsfield.web.batched import streamed
from hounsfield.web.dicomweb import multipart
from hounsfield.web.dicomweb.accept import MediaRange, parse_accept
from hounsfield.web.dicomweb.common import NotAcceptable
from hounsfield.web.dicomweb.ranged import from_file, multipart_pieces, slices

log = logging.getLogger(__name__)
DICOM = "application/dicom"


def accepted_syntaxes(ranges: list[MediaRange]) -> list[str]:
    """The transfer syntaxes the client takes application/dicom parts in, preferred first."""
    out: list[str] = []
    for r in ranges:
        if r.media_type == DICOM or (r.multipart and r.matches(DICOM)):
            explicit = r.part_type == DICOM
            out.append(r.transfer_syntax or (ExplicitVRLittleEndian if explicit else "*"))
    if not out:
        wanted = ", ".join(r.media_type for r in ranges)
        raise NotAcceptable(f'only multipart/related; type="{DICOM}" is served here, not {wanted}')
    return out


def plan(found: list[Located], accepted: list[str]) -> list[tuple[Located, str | None]]:
    """Each object with the syntax it will be sent in (None: stored bytes), or 406 up front."""
    return [(located, choose(located.transfer_syntax, accepted)) for located in found]


def _headers(syntax: str, size: int) -> dict[str, str]:
    return {"Content-Type": f"{DICOM}; transfer-syntax={syntax}", "Content-Length": str(size)}


def parts(planned: Iterable[tuple[Located, str | None]]) -> Iterator[multipart.Part]:
    """One multipart part per object: its stored bytes, or transcoded to `target`."""
    for located, target in planned:
        if target is None:
            chunks = multipart.file_chunks(located.readable(), 0, located.size)
            yield multipart.Part(_headers(located.transfer_syntax, located.size), chunks)
            continue
        try:
            body = transcode(located.readable(), target)
        except Exception as exc:  # the stream has started: leave this object out, say why
            log.warning("WADO-RS: %s left out: %s", located.sop_instance, exc)
            continue
        yield multipart.Part(_headers(target, len(body)), [body])


def retrieve_response(found: list[Located], accept: str | None) -> StreamingResponse:
    """The streamed multipart answer for a set of stored objects: of announced length when
    every object goes as stored (the files' bytes are then sent without a copy), chunked when
    some are transcoded on the way."""
    planned = plan(found, accepted_syntaxes(parse_accept(accept)))
    boundary = multipart.new_boundary()
    media = multipart.content_type(DICOM, boundary)
    if all(target is None for _, target in planned):  # files opened only as their turn comes
        stored = [
            (
                _headers(located.transfer_syntax, located.size),
                [from_file(located.readable(), 0, located.size)],
            )
            for located, _ in planned
        ]
        pieces = multipart_pieces(stored, boundary)
        total = sum(piece.length for piece in pieces)
        return streamed(slices(pieces, 0, total), media, headers={"Content-Length": str(total)})
    return streamed(multipart.write(parts(planned), boundary), media)
