"""The FastAPI application: /health for load balancers, /metrics for Prometheus."""

from __future__ import annotations

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hounsfield import __version__
from hounsfield.archive.context import Archive
from hounsfield.archive.health import health
from hounsfield.metrics import NODE_REGISTRY
from hounsfield.web.admin_forward import mount as mount_admin_forward
from hounsfield.web.admin_reconcile import mount as mount_admin_reconcile
from hounsfield.web.admin_storage import mount as mount_admin_storage
from hounsfield.web.admin_verify import mount as mount_admin_verify
from hounsfield.web.dicomweb.routes import mount as mount_dicomweb
from hounsfield.web.errors import install as install_error_handlers


def create_app(archive: Archive) -> FastAPI:
    """The HTTP application bound to one archive."""
    app = FastAPI(title="Hounsfield", version=__version__)
    install_error_handlers(app)

    @app.get("/health")
    def get_health() -> JSONResponse:
        report = health(archive)
        return JSONResponse(report.as_dict(), status_code=200 if report.ok else 503)

    @app.get("/metrics")
    def get_metrics() -> Response:
        return Response(generate_latest(NODE_REGISTRY), media_type=CONTENT_TYPE_LATEST)

    mount_dicomweb(app, archive)
    mount_admin_storage(app, archive)
    mount_admin_verify(app, archive)
    mount_admin_forward(app, archive)
    mount_admin_reconcile(app, archive)
    return app
