"""WADO-RS retrieve of studies, series and instances (streamed) and of their metadata."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from hounsfield.archive import metadata
from hounsfield.archive.context import Archive
from hounsfield.catalog.partitions import Partition
from hounsfield.errors import NotFound
from hounsfield.web.dicomweb import virtual
from hounsfield.web.dicomweb.accept import parse_accept
from hounsfield.web.dicomweb.common import (
    DICOM_JSON,
    NotAcceptable,
    base_url,
    find_objects,
    uids,
)
from hounsfield.web.dicomweb.packed import json_response, takes_gzip
from hounsfield.web.dicomweb.streamed import retrieve_response
from hounsfield.web.dicomweb.tenant import AtPartition

log = logging.getLogger(__name__)


MEMO_ENTRIES = 64  # gzip'd bodies kept per study document (series x DICOMweb roots seen)


def _body(
    document: metadata.Document, study: str, series: str | None, sop: str | None, base: str
) -> bytes:
    lines = document.select(series, sop)
    if not lines:
        raise NotFound(f"nothing stored under {'/'.join(u for u in (study, series, sop) if u)}")
    body = b"[" + b",".join(lines) + b"]"
    return body.replace(metadata.RELATIVE_URI, b'"BulkDataURI":"' + base.encode() + b"/studies/")


def metadata_response(
    archive: Archive,
    partition: Partition,
    ids: tuple[str, str | None, str | None],
    base: str,
    accept_encoding: str | None,
) -> Response:
    """The metadata answer; a gzip'd body is made once per document, series and root."""
    study, series, sop = uids(*ids)
    document = metadata.load(archive, study, partition=partition)
    if not takes_gzip(accept_encoding):
        return json_response(_body(document, study, series, sop, base), DICOM_JSON, None)
    key = (series, sop, base)
    made = document.memo.get(key)
    if made is None:
        response = json_response(
            _body(document, study, series, sop, base), DICOM_JSON, accept_encoding
        )
        made = (response.body, response.headers.get("content-encoding"))
        if len(document.memo) >= MEMO_ENTRIES:
            document.memo.clear()
        document.memo[key] = made
    body, encoding = made
    headers = {"Vary": "Accept-Encoding"} | ({"Content-Encoding": encoding} if encoding else {})
    return Response(body, media_type=DICOM_JSON, headers=headers)


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
        accept = request.headers.get("accept")
        if partition.virtual:
            return virtual.retrieve_response(archive, partition, study, series, sop, accept)
        found = find_objects(archive, partition, study, series, sop)
        return retrieve_response(found, accept)

    def meta(
        request: Request,
        partition: Partition,
        study: str,
        series: str | None = None,
        sop: str | None = None,
    ) -> Response:
        _check_json(request.headers.get("accept"))
        encoding = request.headers.get("accept-encoding")
        ids = (study, series, sop)
        return metadata_response(archive, partition, ids, base_url(request), encoding)

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
