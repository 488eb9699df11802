"""STOW-RS: each application/dicom part goes through the one ingest path, failures alone."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from hounsfield.archive.context import Archive
from hounsfield.archive.store import Outcome, store
from hounsfield.catalog.parse import parse_header, text
from hounsfield.catalog.partitions import Partition
from hounsfield.errors import ArchiveError, InvalidDataset
from hounsfield.metrics import BYTES_RECEIVED, INSTANCES_RECEIVED
from hounsfield.storage.filemeta import split_part10
from hounsfield.web.dicomweb import multipart
from hounsfield.web.dicomweb.common import (
    DICOM_JSON,
    BadRequest,
    UnsupportedMediaType,
    base_url,
    uids,
)
from hounsfield.web.dicomweb.tenant import AtPartition

log = logging.getLogger(__name__)
DICOM = "application/dicom"
PROCESSING_FAILURE = 0x0110
CANNOT_UNDERSTAND = 0xC000
STUDY_MISMATCH = 0xC409  # the instance belongs to another study than the URL names


class StudyMismatch(InvalidDataset):
    """A part's Study Instance UID differs from the one in the STOW-RS URL."""

    dimse_status = STUDY_MISMATCH


@dataclass(frozen=True)
class Stored:
    """One instance the archive now holds."""

    sop_class: str
    sop_instance: str
    study: str
    series: str


@dataclass(frozen=True)
class Failed:
    """One part the archive refused, and why."""

    sop_class: str
    sop_instance: str
    reason: int
    message: str


def store_part(
    archive: Archive, partition: Partition, body: bytes, study: str | None
) -> Stored | Failed:
    """Store one Part-10 part in `partition`; every refusal becomes a Failed, never raised."""
    sop_class = sop_instance = ""
    try:
        meta, data = split_part10(body)
        sop_class = str(meta.get("MediaStorageSOPClassUID", ""))
        sop_instance = str(meta.get("MediaStorageSOPInstanceUID", ""))
        syntax = str(meta.TransferSyntaxUID)
        if study is not None:
            found = text(parse_header(data, syntax).dataset, "StudyInstanceUID")
            if found != study:
                raise StudyMismatch(f"the instance belongs to study {found!r}, not {study}")
        result = store(archive, syntax, data, partition=partition)
    except ArchiveError as exc:
        log.info("STOW-RS part %s refused: %s", sop_instance or "?", exc.message)
        INSTANCES_RECEIVED.labels("stow", "failed").inc()
        return Failed(sop_class, sop_instance, exc.dimse_status, exc.message)
    except Exception as exc:
        log.exception("STOW-RS part %s failed", sop_instance or "?")
        INSTANCES_RECEIVED.labels("stow", "failed").inc()
        return Failed(sop_class, sop_instance, PROCESSING_FAILURE, str(exc))
    INSTANCES_RECEIVED.labels("stow", result.outcome.value).inc()
    if result.outcome in (Outcome.STORED, Outcome.OVERWRITTEN):
        BYTES_RECEIVED.labels("stow").inc(result.size)
    return Stored(result.sop_class, result.sop_instance, result.study, result.series)


def response_body(outcomes: list[Stored | Failed], base: str, study: str | None) -> dict[str, Any]:
    """The Store Instances response dataset in DICOM JSON."""
    out: dict[str, Any] = {}
    stored = [o for o in outcomes if isinstance(o, Stored)]
    failed = [o for o in outcomes if isinstance(o, Failed)]
    studies = {o.study for o in stored}
    if study or len(studies) == 1:
        out["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{study or studies.pop()}"]}
    if failed:
        out["00081198"] = {"vr": "SQ", "Value": [_failed(f) for f in failed]}
    if stored:
        out["00081199"] = {"vr": "SQ", "Value": [_stored(s, base) for s in stored]}
    return out


def _uid(value: str) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def _failed(f: Failed) -> dict[str, Any]:
    return {
        "00081150": _uid(f.sop_class),
        "00081155": _uid(f.sop_instance),
        "00081197": {"vr": "US", "Value": [f.reason]},
    }


def _stored(s: Stored, base: str) -> dict[str, Any]:
    url = f"{base}/studies/{s.study}/series/{s.series}/instances/{s.sop_instance}"
    return {
        "00081150": _uid(s.sop_class),
        "00081155": _uid(s.sop_instance),
        "00081190": {"vr": "UR", "Value": [url]},
    }


def status_of(outcomes: list[Stored | Failed]) -> int:
    """200 when all were stored, 202 when some were, 409 when none were (PS3.18 10.5.3)."""
    failed = sum(isinstance(o, Failed) for o in outcomes)
    if not failed:
        return 200
    return 409 if failed == len(outcomes) else 202


def router(archive: Archive) -> APIRouter:
    """The STOW-RS routes."""
    api = APIRouter()

    async def receive(request: Request, partition: Partition, study: str | None) -> Response:
        if study is not None:
            study = uids(study)[0]
        header = request.headers.get("content-type", "")
        media, boundary = (
            multipart.boundary_of(header) if "multipart" in header.lower() else (header, "")
        )
        if media != "multipart/related":
            raise UnsupportedMediaType(
                f'STOW-RS takes multipart/related; type="{DICOM}", not {header or "no type"}'
            )
        body_type = multipart.type_of(header) or DICOM
        if body_type != DICOM:
            raise UnsupportedMediaType(f"only {DICOM} parts are accepted, not {body_type}")
        outcomes: list[Stored | Failed] = []
        async for part in multipart.read(request.stream(), boundary):
            part_type = part.headers.get("content-type", DICOM).split(";")[0].strip().lower()
            if part_type != DICOM:
                reason = f"part of type {part_type} is not {DICOM}"
                outcomes.append(Failed("", "", CANNOT_UNDERSTAND, reason))
                continue
            outcome = await run_in_threadpool(store_part, archive, partition, part.body, study)
            outcomes.append(outcome)
        if not outcomes:
            raise BadRequest("the multipart body has no parts")
        body = response_body(outcomes, base_url(request), study)
        return Response(
            json.dumps(body).encode(), status_code=status_of(outcomes), media_type=DICOM_JSON
        )

    @api.post("/studies")
    async def stow(request: Request, partition: AtPartition) -> Response:
        return await receive(request, partition, None)

    @api.post("/studies/{study}")
    async def stow_study(request: Request, partition: AtPartition, study: str) -> Response:
        return await receive(request, partition, study)

    return api
