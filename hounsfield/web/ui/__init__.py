"""Server-rendered admin pages under /ui/: Jinja2 templates, htmx actions, one stylesheet."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from hounsfield.archive.context import Archive
from hounsfield.web.ui import (
    alerts,
    audit,
    cluster,
    devices,
    home,
    logs,
    partitions,
    queue,
    reconcile,
    rules,
    services,
    storage,
    studies,
)

STATIC = Path(__file__).parent / "static"
PAGES = (
    home,
    studies,
    queue,
    services,
    storage,
    rules,
    devices,
    partitions,
    alerts,
    logs,
    audit,
    reconcile,
    cluster,
)


def mount(app: FastAPI, archive: Archive) -> None:
    """Add the admin pages to `app` under /ui/ (the root stays free for the viewer)."""
    router = APIRouter(prefix="/ui", include_in_schema=False)

    @router.get("")
    def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    for page in PAGES:
        router.include_router(page.routes(archive))
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
