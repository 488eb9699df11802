"""The overview: what the archive holds, how full its filesystems are, what needs attention."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hounsfield.alerts import list_alerts
from hounsfield.archive.context import Archive
from hounsfield.archive.status import status
from hounsfield.web.ui.render import page
from hounsfield.workqueue import admin


def routes(archive: Archive) -> APIRouter:
    """The overview page of `archive`."""
    router = APIRouter()

    @router.get("/", response_class=HTMLResponse)
    def get_home(request: Request) -> HTMLResponse:
        return page(
            request,
            "home.html",
            status=status(archive),
            counts=sorted(admin.counts(archive.engine).items()),
            alerts=list_alerts(archive.engine, 5),
        )

    return router
