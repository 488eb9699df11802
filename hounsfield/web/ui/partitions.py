"""Partitions: AE titles, ports, policies, and the members of virtual ones."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hounsfield.archive.context import Archive
from hounsfield.web.ui.render import page


def routes(archive: Archive) -> APIRouter:
    """The partitions page of `archive`."""
    router = APIRouter()

    @router.get("/partitions", response_class=HTMLResponse)
    def get_partitions(request: Request) -> HTMLResponse:
        archive.forget_partitions()  # show what the database holds now
        return page(
            request,
            "partitions.html",
            partitions=archive.partitions(),
            default=archive.default_partition,
        )

    return router
