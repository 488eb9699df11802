"""Admin API: run reconciliations, read their reports (JSON, CSV), manage scheduled jobs."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from hounsfield.archive.context import Archive
from hounsfield.sites.reconcile import reconcile
from hounsfield.sites.reconcile_csv import report_csv
from hounsfield.sites.reconcile_metrics import install as install_metrics
from hounsfield.sites.reconcile_model import direction_of
from hounsfield.sites.reconcile_queue import queue_reconcile
from hounsfield.sites.reconcile_reports import get_report, list_reports
from hounsfield.sites.reconcile_schedule import add_job, list_jobs, remove_job


class ReconcileRequest(BaseModel):
    """A reconciliation to run now: a partition with a peer over a range of study dates."""

    partition: str
    peer: str = Field(description="The device's AE title")
    date_from: str = Field(description="First study date, YYYYMMDD")
    date_to: str = Field(description="Last study date, YYYYMMDD")
    fetch: bool = Field(default=False, description="Retrieve what is missing here")
    push: bool = Field(default=False, description="Send what the peer lacks")
    method: Literal["auto", "get", "move"] = "auto"
    depth: Literal["counts", "instances"] = Field(
        default="counts",
        description="counts: drill down where instance counts differ; instances: compare "
        "every series instance by instance",
    )
    background: bool = Field(
        default=False,
        description="Queue it as a work item (any node runs it; answered 202 at once) "
        "instead of waiting for its report",
    )


class JobIn(BaseModel):
    """A scheduled reconciliation as the API takes it."""

    partition: str
    peer: str
    period: Literal["yesterday", "last-7-days", "last-month"] = "yesterday"
    direction: Literal["none", "fetch", "push", "both"] = "none"
    depth: Literal["counts", "instances"] = "counts"
    at: str = "02:00"
    enabled: bool = True


def mount(app: FastAPI, archive: Archive) -> None:
    """Add the reconciliation routes to `app` and its metrics to /metrics."""
    install_metrics(archive.engine)
    router = APIRouter(prefix="/admin/reconcile", tags=["admin"])

    @router.post("", responses={202: {"description": "Queued: the work item's id"}})
    def post_reconcile(body: ReconcileRequest) -> Any:
        """Run a reconciliation now and answer its report (the request waits for it), or
        with `background`, queue it and answer 202 with the work item's id."""
        if body.background:
            item = queue_reconcile(
                archive,
                body.partition,
                body.peer,
                body.date_from,
                body.date_to,
                direction=direction_of(body.fetch, body.push),
                method=body.method,
                depth=body.depth,
            )
            return JSONResponse({"work_item": item or None}, status_code=202)
        report = reconcile(
            archive,
            body.partition,
            body.peer,
            body.date_from,
            body.date_to,
            direction=direction_of(body.fetch, body.push),
            method=body.method,
            depth=body.depth,
        )
        return report.to_dict()

    @router.get("/reports")
    def get_reports(
        partition: str | None = None,
        peer: str | None = None,
        limit: int = Query(50, ge=1, le=10_000),
    ) -> list[dict[str, Any]]:
        rows = list_reports(archive.engine, partition=partition, peer=peer, limit=limit)
        return [r.to_dict() for r in rows]

    @router.get("/reports/{pk}.csv")
    def get_report_csv(pk: int) -> Response:
        text = report_csv(get_report(archive.engine, pk))
        headers = {"Content-Disposition": f'attachment; filename="reconcile-{pk}.csv"'}
        return Response(text, media_type="text/csv", headers=headers)

    @router.get("/reports/{pk}")
    def get_one_report(pk: int) -> dict[str, Any]:
        return get_report(archive.engine, pk).to_dict()

    @router.get("/jobs")
    def get_jobs() -> list[dict[str, Any]]:
        return [_iso(asdict(j)) for j in list_jobs(archive.engine)]

    @router.put("/jobs/{name}")
    def put_job(name: str, body: JobIn) -> dict[str, Any]:
        values = body.model_dump()
        new = add_job(archive, name, values.pop("partition"), values.pop("peer"), **values)
        return {"name": name, "created": new}

    @router.delete("/jobs/{name}")
    def delete_job(name: str) -> dict[str, Any]:
        remove_job(archive.engine, name)
        return {"name": name, "removed": True}

    app.include_router(router)


def _iso(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}
