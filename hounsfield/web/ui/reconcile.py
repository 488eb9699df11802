"""Reconciliation: the reports (with their differences) and the scheduled jobs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hounsfield.archive.context import Archive
from hounsfield.sites.reconcile_reports import get_report, list_reports
from hounsfield.sites.reconcile_schedule import list_jobs
from hounsfield.web.ui.render import page


def routes(archive: Archive) -> APIRouter:
    """The reconciliation pages of `archive`."""
    router = APIRouter()

    @router.get("/reconcile", response_class=HTMLResponse)
    def get_reconcile(request: Request, partition: str = "", peer: str = "") -> HTMLResponse:
        reports = list_reports(
            archive.engine, partition=partition or None, peer=peer or None, limit=100
        )
        return page(
            request,
            "reconcile.html",
            reports=reports,
            jobs=list_jobs(archive.engine),
            partition=partition,
            peer=peer,
        )

    @router.get("/reconcile/{pk}", response_class=HTMLResponse)
    def get_one(request: Request, pk: int) -> HTMLResponse:
        return page(request, "reconcile_report.html", report=get_report(archive.engine, pk))

    return router
