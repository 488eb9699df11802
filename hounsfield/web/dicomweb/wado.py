"""WADO-RS retrieve of studies, series and instances (streamed) and of their metadata."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydicom.uid import ExplicitVRLittleEndian

from hounsfield.archive import metadata
from hounsfield.archive.context import Archive
from hounsfield.archive.query import Located
from hounsfield.catalog.partitions import Partition
from hounsfield.errors import NotFound
from hounsfield.imaging.transcode import choose, transcode
from hounsfield.web.dicomweb import multipart
from hounsfield.web.dicomweb.accept import MediaRange, parse_accept
from hounsfield.web.dicomweb.common import (
    DICOM_JSON,
    NotAcceptable,
    base_url,
    find_objects,
    uids,
)
from hounsfield.web.dicomweb.tenant import AtPartition

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


def _parts(planned: list[tuple[Located, str | None]]) -> Iterator[multipart.Part]:
    for located, target in planned:
        syntax = target or located.transfer_syntax
        headers = {"Content-Type": f"{DICOM}; transfer-syntax={syntax}"}
        if target is None:
            headers["Content-Length"] = str(located.size)
            yield multipart.Part(headers, multipart.file_chunks(located.path))
            continue
        try:
            body = transcode(located.path, target)
        except Exception as exc:  # the stream has started: leave this object out, say why
            log.warning("WADO-RS: %s left out: %s", located.sop_instance, exc)
            continue
        headers["Content-Length"] = str(len(body))
        yield multipart.Part(headers, [body])


def retrieve_response(found: list[Located], accept: str | None) -> StreamingResponse:
    """The streamed multipart answer for a set of stored objects."""
    planned = plan(found, accepted_syntaxes(parse_accept(accept)))
    boundary = multipart.new_boundary()
    return StreamingResponse(
        multipart.write(_parts(planned), boundary),
        media_type=multipart.content_type(DICOM, boundary),
    )


def metadata_body(
    archive: Archive,
    partition: Partition,
    study: str,
    series: str | None,
    sop: str | None,
    base: str,
) -> bytes:
    """The DICOM JSON metadata of a study, series or instance from the study document;
    bulk data URIs point under `base`, the partition's DICOMweb root."""
    study, series, sop = uids(study, series, sop)
    lines = metadata.load(archive, study, partition=partition).select(series, sop)
    if not lines:
        raise NotFound(f"nothing stored under {'/'.join(u for u in (study, series, sop) if u)}")
    body = b"[" + b",".join(lines) + b"]"
    return body.replace(metadata.RELATIVE_URI, b'"BulkDataURI":"' + base.encode() + b"/studies/")


def router(archive: Archive) -> APIRouter:
    """The WADO-RS retrieve and metadata routes."""
    api = APIRouter()
    instance = "/studies/{study}/series/{series}/instances/{sop}"

    def retrieve(
        request: Request,
        partition: Partition,
        study: str,
        series: str | None = None,
        sop: str | None = None,
    ) -> Response:
        found = find_objects(archive, partition, study, series, sop)
        return retrieve_response(found, request.headers.get("accept"))

    def meta(
        request: Request,
        partition: Partition,
        study: str,
        series: str | None = None,
        sop: str | None = None,
    ) -> Response:
        _check_json(request.headers.get("accept"))
        body = metadata_body(archive, partition, study, series, sop, base_url(request))
        return Response(body, media_type=DICOM_JSON)

    @api.get("/studies/{study}")
    def get_study(request: Request, partition: AtPartition, study: str) -> Response:
        return retrieve(request, partition, study)

    @api.get("/studies/{study}/series/{series}")
    def get_series(request: Request, partition: AtPartition, study: str, series: str) -> Response:
        return retrieve(request, partition, study, series)

    @api.get(instance)
    def get_instance(
        request: Request, partition: AtPartition, study: str, series: str, sop: str
    ) -> Response:
        return retrieve(request, partition, study, series, sop)

    @api.get("/studies/{study}/metadata")
    def study_metadata(request: Request, partition: AtPartition, study: str) -> Response:
        return meta(request, partition, study)

    @api.get("/studies/{study}/series/{series}/metadata")
    def series_metadata(
        request: Request, partition: AtPartition, study: str, series: str
    ) -> Response:
        return meta(request, partition, study, series)

    @api.get(instance + "/metadata")
    def instance_metadata(
        request: Request, partition: AtPartition, study: str, series: str, sop: str
    ) -> Response:
        return meta(request, partition, study, series, sop)

    return api


def _check_json(accept: str | None) -> None:
    for r in parse_accept(accept):
        if r.media_type in (DICOM_JSON, "application/json", "*/*", "application/*"):
            return
    raise NotAcceptable(f"metadata is served as {DICOM_JSON}, not {accept}")
