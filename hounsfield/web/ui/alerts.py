"""Alerts raised for operators, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from hounsfield.alerts import list_alerts
from hounsfield.archive.context import Archive
from hounsfield.web.ui.render import page


def routes(archive: Archive) -> APIRouter:
    """The alerts page of `archive`."""
    router = APIRouter()

    @router.get("/alerts", response_class=HTMLResponse)
    def get_alerts(request: Request, limit: int = Query(200, ge=1, le=10_000)) -> HTMLResponse:
        return page(request, "alerts.html", alerts=list_alerts(archive.engine, limit))

    return router
