"""The FastAPI application: /health for load balancers, /metrics for Prometheus."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import anyio.to_thread
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hounsfield import __version__
from hounsfield.archive.context import Archive
from hounsfield.archive.health import health
from hounsfield.cluster.heartbeat import Condition
from hounsfield.metrics import NODE_REGISTRY
from hounsfield.web.admin_audit import mount as mount_admin_audit
from hounsfield.web.admin_cluster import mount as mount_admin_cluster
from hounsfield.web.admin_forward import mount as mount_admin_forward
from hounsfield.web.admin_reconcile import mount as mount_admin_reconcile
from hounsfield.web.admin_storage import mount as mount_admin_storage
from hounsfield.web.admin_studies import mount as mount_admin_studies
from hounsfield.web.admin_users import mount as mount_admin_users
from hounsfield.web.admin_verify import mount as mount_admin_verify
from hounsfield.web.audit import AuditTrailMiddleware
from hounsfield.web.auth import Gate
from hounsfield.web.dicomweb.routes import mount as mount_dicomweb
from hounsfield.web.dicomweb.tenant import through_virtual
from hounsfield.web.errors import install as install_error_handlers
from hounsfield.web.fair import Counts, FairTurns
from hounsfield.web.ui import login as ui_login
from hounsfield.web.ui import mount as mount_ui
from hounsfield.web.viewer.routes import mount as mount_viewer


def create_app(
    archive: Archive,
    condition: Callable[[], Condition] | None = None,
    counts: Counts | None = None,
) -> FastAPI:
    """The HTTP application bound to one archive (and to the node's last heartbeat, which
    says whether it drains); `counts`: each client's outstanding requests over all of the
    node's HTTP processes, when it has several (see `web.fair`)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The threads that run blocking handlers and read streamed answers (see settings).
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = archive.settings.http_threads + archive.settings.http_remote_threads
        yield

    app = FastAPI(title="Hounsfield", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(AuditTrailMiddleware, archive=archive)  # inside the gate: knows the caller
    app.add_middleware(Gate, archive=archive)  # added early: CORS stays outside it

    @app.get("/health")
    def get_health() -> JSONResponse:
        """200 when this node should get traffic; 503 when its database or storage is
        unavailable or it is draining (for load balancers)."""
        draining = condition().draining if condition is not None else False
        report = health(archive, draining=draining)
        return JSONResponse(report.as_dict(), status_code=200 if report.ok else 503)

    @app.get("/metrics")
    def get_metrics() -> Response:
        return Response(generate_latest(NODE_REGISTRY), media_type=CONTENT_TYPE_LATEST)

    mount_dicomweb(app, archive)
    mount_admin_storage(app, archive)
    mount_admin_verify(app, archive)
    mount_admin_forward(app, archive)
    mount_admin_reconcile(app, archive)
    mount_admin_cluster(app, archive)
    mount_admin_studies(app, archive)
    mount_admin_users(app, archive)
    mount_admin_audit(app, archive)
    app.include_router(ui_login.routes(archive))
    mount_ui(app, archive)
    mount_viewer(app, archive)  # last: its fallback answers only what no other route does
    # Outermost: a request waits for its turn before anything else (sign-in checks included)
    # runs for it, and holds one of the handler threads' worth of turns.
    # Reads through a virtual partition take turns of their own (see `web.fair`).
    app.add_middleware(
        FairTurns,
        slots=archive.settings.http_threads,
        counts=counts,
        remote_slots=archive.settings.http_remote_threads,
        remote=partial(through_virtual, archive),
    )
    return app
