"""The service schedule: enable, disable, reschedule, run now; "locked" while one runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from hounsfield.archive.context import Archive
from hounsfield.errors import InvalidDataset
from hounsfield.scheduled import lock
from hounsfield.scheduled.scheduler import ensure_services, run_service
from hounsfield.web.ui.render import page, wants_fragment


def routes(archive: Archive) -> APIRouter:
    """The service schedule page of `archive`."""
    router = APIRouter()
    engine = archive.engine

    def row(request: Request, name: str, notice: str = "") -> HTMLResponse:
        return page(
            request, "service_row.html", service=lock.get_service(engine, name), notice=notice
        )

    @router.get("/services", response_class=HTMLResponse)
    def get_services(request: Request) -> HTMLResponse:
        ensure_services(archive)
        name = "services_table.html" if wants_fragment(request, "services") else "services.html"
        return page(request, name, services=lock.list_services(engine))

    @router.post("/services/{name}/enable", response_class=HTMLResponse)
    def post_enable(request: Request, name: str) -> HTMLResponse:
        lock.configure(engine, name, enabled=True)
        return row(request, name)

    @router.post("/services/{name}/disable", response_class=HTMLResponse)
    def post_disable(request: Request, name: str) -> HTMLResponse:
        lock.configure(engine, name, enabled=False)
        return row(request, name)

    @router.post("/services/{name}/reschedule", response_class=HTMLResponse)
    def post_reschedule(
        request: Request, name: str, interval_seconds: Annotated[int, Form()]
    ) -> HTMLResponse:
        if interval_seconds < 1:
            raise InvalidDataset("the interval is at least one second")
        lock.configure(engine, name, interval_seconds=interval_seconds)
        return row(request, name)

    @router.post("/services/{name}/run", response_class=HTMLResponse)
    def post_run(request: Request, name: str) -> HTMLResponse:
        result = run_service(archive, name, force=True)
        return row(request, name, "running on another node" if result is None else result)

    return router
