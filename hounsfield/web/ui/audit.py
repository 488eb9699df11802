"""The audit trail page: accesses, changes and security events, filtered."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from hounsfield.archive.context import Archive
from hounsfield.audit.events import KINDS
from hounsfield.audit.records import AuditFilter, list_records
from hounsfield.web.audit_filter import audit_filter
from hounsfield.web.ui.render import page


def routes(archive: Archive) -> APIRouter:
    """The audit trail page of `archive`."""
    router = APIRouter()

    @router.get("/audit", response_class=HTMLResponse)
    def get_audit(
        request: Request, wanted: Annotated[AuditFilter, Depends(audit_filter)]
    ) -> HTMLResponse:
        rows = list_records(archive.engine, wanted)
        return page(
            request,
            "audit.html",
            rows=rows,
            kinds=KINDS,
            f=wanted,
            since=request.query_params.get("since", ""),
            until=request.query_params.get("until", ""),
        )

    return router
