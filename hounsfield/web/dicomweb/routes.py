"""Mount every DICOMweb service under /dicomweb, with CORS for browser viewers."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from hounsfield.archive.context import Archive
from hounsfield.web.dicomweb import delete, frames, qido, rendered, stow, uri, wado
from hounsfield.web.dicomweb.common import PREFIX

EXPOSED = ["Content-Type", "Content-Length", "Content-Range", "Warning", "X-Rendered-By"]


def mount(app: FastAPI, archive: Archive) -> None:
    """Add the DICOMweb routes and, when origins are configured, CORS."""
    for module in (qido, wado, frames, rendered, stow, delete, uri):
        app.include_router(module.router(archive), prefix=PREFIX, tags=["dicomweb"])
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
