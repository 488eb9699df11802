"""DELETE of a study, series or instance: one archive verb, 204 when done."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from hounsfield.archive.context import Archive
from hounsfield.archive.remove import remove
from hounsfield.web.dicomweb.common import DicomwebRoute, uids


def router(archive: Archive) -> APIRouter:
    """The DELETE routes."""
    api = APIRouter(route_class=DicomwebRoute)

    async def gone(study: str, series: str | None = None, sop: str | None = None) -> Response:
        study, series, sop = uids(study, series, sop)
        await run_in_threadpool(remove, archive, study, series, sop)
        return Response(status_code=204)

    @api.delete("/studies/{study}")
    async def delete_study(study: str) -> Response:
        return await gone(study)

    @api.delete("/studies/{study}/series/{series}")
    async def delete_series(study: str, series: str) -> Response:
        return await gone(study, series)

    @api.delete("/studies/{study}/series/{series}/instances/{sop}")
    async def delete_instance(study: str, series: str, sop: str) -> Response:
        return await gone(study, series, sop)

    return api
