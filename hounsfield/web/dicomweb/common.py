"""Shared edges of the DICOMweb routes: refusals, UID checks, lookups, base URLs."""

from __future__ import annotations

from fastapi import Request

from hounsfield.archive.context import Archive
from hounsfield.archive.query import Located, locate, locate_instance
from hounsfield.catalog.partitions import Partition
from hounsfield.dicomnet.identifiers import retrieve
from hounsfield.errors import ArchiveError, NotFound
from hounsfield.uids import check_uid
from hounsfield.web.dicomweb.tenant import root_path

DICOM_JSON = "application/dicom+json"


class BadRequest(ArchiveError):
    """The HTTP request itself is malformed (parameters, headers, body framing)."""

    http_status = 400


class NotAcceptable(ArchiveError):
    """None of the media types the client accepts can be produced."""

    http_status = 406


class UnsupportedMediaType(ArchiveError):
    """The request body has a media type this resource does not take."""

    http_status = 415


def base_url(request: Request) -> str:
    """The absolute URL of the request's DICOMweb root (its partition's) as the client reached it.

    `public_url` wins when set (behind a proxy); then X-Forwarded-Proto/Host; then Host.
    A Host without a port (some clients drop it) gets this server's port back."""
    public = getattr(request.app.state, "public_url", None)
    if public:
        return public.rstrip("/") + root_path(request)
    headers = request.headers
    scheme = headers.get("x-forwarded-proto") or request.url.scheme
    host = headers.get("x-forwarded-host") or headers.get("host") or ""
    server = request.scope.get("server")
    if not headers.get("x-forwarded-host") and ":" not in host.rsplit("]", 1)[-1] and server:
        port = server[1]
        if port and port != (443 if scheme == "https" else 80):
            host = f"{host or server[0]}:{port}"
    root = request.scope.get("root_path", "")
    return f"{scheme}://{host}{root}{root_path(request)}"


def uids(
    study: str, series: str | None = None, sop: str | None = None
) -> tuple[str, str | None, str | None]:
    """Path UIDs, validated before they touch a query."""
    return (
        check_uid(study, "StudyInstanceUID"),
        check_uid(series, "SeriesInstanceUID") if series is not None else None,
        check_uid(sop, "SOPInstanceUID") if sop is not None else None,
    )


def find_objects(
    archive: Archive,
    partition: Partition,
    study: str,
    series: str | None = None,
    sop: str | None = None,
) -> list[Located]:
    """The stored objects a retrieve URL names in `partition`; NotFound when there are none."""
    study, series, sop = uids(study, series, sop)
    if series is not None and sop is not None:
        one = locate_instance(archive, study, series, sop, partition.pk)
        found = [one] if one is not None else []
    else:
        found = locate(archive, retrieve(study, series, sop), partition=partition)
    if not found:
        raise NotFound(f"nothing stored under {'/'.join(u for u in (study, series, sop) if u)}")
    return found


def find_one(archive: Archive, partition: Partition, study: str, series: str, sop: str) -> Located:
    """The one stored object an instance URL names in `partition`."""
    return find_objects(archive, partition, study, series, sop)[0]
