"""Archive refusals become HTTP answers here, once for the whole application."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hounsfield.errors import ArchiveError, Unauthenticated

log = logging.getLogger(__name__)


def error_response(exc: ArchiveError) -> JSONResponse:
    """The HTTP answer to an archive refusal: its status and a readable message (a 401 also
    says how to authenticate)."""
    headers = {"WWW-Authenticate": 'Bearer realm="hounsfield"'}
    extra = headers if isinstance(exc, Unauthenticated) else None
    return JSONResponse({"error": exc.message}, status_code=exc.http_status, headers=extra)


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ArchiveError)
    log.info("%s %s refused: %s", request.method, request.url.path, exc.message)
    return error_response(exc)


def install(app: FastAPI) -> None:
    """Answer every ArchiveError a route or dependency raises with its HTTP status."""
    app.add_exception_handler(ArchiveError, _refused)
