"""OHIF at the node's root: app-config.js for this node, its static files, and index.html for
the viewer's own paths (/viewer?StudyInstanceUIDs=…), behind every route of the node."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from starlette.routing import Match, Route
from starlette.types import Scope

from hounsfield.archive.context import Archive
from hounsfield.errors import NotFound
from hounsfield.web.dicomweb.common import base_url
from hounsfield.web.viewer.config import app_config
from hounsfield.web.viewer.files import REVALIDATE, ViewerFiles

log = logging.getLogger(__name__)
# The node's own paths: never answered by the viewer, even when nothing else matches there.
NODE_PREFIXES = ("/dicomweb", "/admin", "/ui", "/health", "/metrics", "/docs", "/redoc")
NODE_PATHS = ("/openapi.json",)


def node_path(path: str) -> bool:
    """Whether `path` belongs to the node (DICOMweb, admin, UI, health, metrics, API docs)."""
    return path in NODE_PATHS or any(path == p or path.startswith(p + "/") for p in NODE_PREFIXES)


class ViewerRoute(Route):
    """A catch-all GET route that never matches the node's own paths, so that a missing one
    there keeps its usual 404 or 405."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and node_path(scope["path"]):
            return Match.NONE, {}
        return super().matches(scope)


def mount(app: FastAPI, archive: Archive) -> None:
    """Serve OHIF from `viewer_dir` at the root; mounted last, after every other route. With no
    viewer installed there, the node serves none and says so in its log."""
    folder = archive.settings.viewer_dir
    if not (folder / "index.html").is_file():
        log.info("no viewer: %s has no index.html (`make viewer` installs OHIF there)", folder)
        return
    files = ViewerFiles(folder)

    def config(request: Request) -> Response:
        """OHIF's configuration, pointed at this node's DICOMweb as the browser reaches it."""
        text = app_config(archive.partitions(), archive.default_partition, base_url(request))
        return Response(text, media_type="text/javascript", headers={"Cache-Control": REVALIDATE})

    def page(request: Request) -> Response:
        """A static file of the viewer, or its index.html for a page of the viewer."""
        path = request.url.path
        found = files.response(path, request.headers)
        if found is not None:
            return found
        if "text/html" in request.headers.get("accept", ""):
            index = files.response("index.html", request.headers)
            if index is not None:
                return index
        raise NotFound(f"{path} is not a page or file of the viewer")

    methods = ["GET"]  # and HEAD
    app.router.routes.append(ViewerRoute("/app-config.js", config, methods=methods))
    app.router.routes.append(ViewerRoute("/{path:path}", page, methods=methods))
    log.info("viewer: OHIF from %s at /", folder)
