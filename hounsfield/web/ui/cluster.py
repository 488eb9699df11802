"""Cluster nodes: their state from their heartbeats, the work they hold; drain and resume."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hounsfield.archive.context import Archive
from hounsfield.cluster import nodes
from hounsfield.web.ui.render import page


def routes(archive: Archive) -> APIRouter:
    """The cluster page of `archive`."""
    router = APIRouter()
    settings = archive.settings

    def listed(request: Request, name: str) -> HTMLResponse:
        rows = nodes.list_nodes(
            archive.engine, settings.heartbeat_seconds, settings.node_down_seconds
        )
        return page(request, name, nodes=rows, here=settings.node_name)

    @router.get("/cluster", response_class=HTMLResponse)
    def get_cluster(request: Request) -> HTMLResponse:
        return listed(request, "cluster.html")

    @router.post("/cluster/{name}/drain", response_class=HTMLResponse)
    def post_drain(request: Request, name: str) -> HTMLResponse:
        nodes.set_draining(archive.engine, name, True)
        return listed(request, "cluster_table.html")

    @router.post("/cluster/{name}/resume", response_class=HTMLResponse)
    def post_resume(request: Request, name: str) -> HTMLResponse:
        nodes.set_draining(archive.engine, name, False)
        return listed(request, "cluster_table.html")

    return router
