"""The application log of every node: warnings and above, work-queue and service events."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from hounsfield.archive.context import Archive
from hounsfield.scheduled.applog import log_lines
from hounsfield.web.ui.render import page

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def routes(archive: Archive) -> APIRouter:
    """The application log page of `archive`."""
    router = APIRouter()

    @router.get("/log", response_class=HTMLResponse)
    def get_log(
        request: Request,
        level: str = "",
        node: str = "",
        limit: int = Query(200, ge=1, le=10_000),
    ) -> HTMLResponse:
        lines = log_lines(archive.engine, level=level or None, node=node or None, limit=limit)
        return page(request, "log.html", lines=lines, levels=LEVELS, level=level, node=node)

    return router
