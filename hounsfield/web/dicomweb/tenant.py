"""The partition a DICOMweb request addresses: /dicomweb/aets/{aet}/..., or the default one."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from starlette.types import Scope

from hounsfield.archive.context import Archive
from hounsfield.catalog.partitions import Partition
from hounsfield.errors import NotFound

PREFIX = "/dicomweb"
AET = "aet"
PARTITION_PREFIX = PREFIX + "/aets/{" + AET + "}"


def bind(app: FastAPI, archive: Archive) -> None:
    """Make `archive` the one whose partitions the DICOMweb routes of `app` resolve."""
    app.state.archive = archive


def aet_of(request: Request) -> str | None:
    """The AE title in the request's path, None under the default /dicomweb root."""
    aet = request.path_params.get(AET)
    return None if aet is None else str(aet)


def resolve(request: Request) -> Partition:
    """The request's partition, read once per request; NotFound (404) for an unknown AE."""
    archive = request.app.state.archive
    assert isinstance(archive, Archive)
    aet = aet_of(request)
    if aet is not None and not aet.strip():
        raise NotFound("an empty AE title names no partition")
    return archive.partition(aet)


def root_path(request: Request) -> str:
    """/dicomweb or /dicomweb/aets/{aet}, as this request addressed it."""
    aet = aet_of(request)
    return PREFIX if aet is None else f"{PREFIX}/aets/{quote(aet, safe='')}"


def through_virtual(archive: Archive, scope: Scope) -> bool:
    """Whether a request reads through a virtual partition (/dicomweb/aets/{aet}/...), by the
    partitions as the node last read them: no database read, for the event loop."""
    parts = str(scope["path"]).split("/")
    if len(parts) < 4 or parts[1] != "dicomweb" or parts[2] != "aets":
        return False
    part = archive.known_partition(parts[3])
    return part is not None and part.virtual


AtPartition = Annotated[Partition, Depends(resolve)]
