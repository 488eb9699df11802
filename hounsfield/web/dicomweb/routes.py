"""Mount every DICOMweb service at /dicomweb and at /dicomweb/aets/{aet}, with CORS."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Path
from starlette.middleware.cors import CORSMiddleware

from hounsfield.archive.context import Archive
from hounsfield.web.dicomweb import delete, frames, qido, rendered, stow, uri, wado
from hounsfield.web.dicomweb.tenant import PARTITION_PREFIX, PREFIX, bind

# Byte-range readers (Cornerstone) need the total from Content-Range; Range itself is allowed
# by allow_headers.
EXPOSED = [
    "Content-Type",
    "Content-Length",
    "Content-Range",
    "Accept-Ranges",
    "ETag",
    "Warning",
    "X-Rendered-By",
]


def _partition(
    aet: Annotated[str, Path(description="The AE title of the partition addressed.")],
) -> None:
    """Declares /dicomweb/aets/{aet}'s AE title in the OpenAPI description (`tenant.resolve`
    reads it from the path)."""


def mount(app: FastAPI, archive: Archive) -> None:
    """Add the DICOMweb routes and, when origins are configured, CORS.

    The same routers serve the default partition at /dicomweb and every partition at
    /dicomweb/aets/{aet}; each request's partition is resolved once, by `tenant.resolve`."""
    bind(app, archive)
    routers = [m.router(archive) for m in (qido, wado, frames, rendered, stow, delete, uri)]
    for prefix, declared in ((PREFIX, []), (PARTITION_PREFIX, [Depends(_partition)])):
        for api in routers:
            app.include_router(api, prefix=prefix, tags=["dicomweb"], dependencies=declared)
    app.state.public_url = archive.settings.public_url
    origins = archive.settings.cors_origins
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=EXPOSED,
            max_age=600,
        )
