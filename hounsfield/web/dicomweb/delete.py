"""DELETE of a study, series or instance in one partition: one archive verb, 204 when done."""

from __future__ import annotations

from fastapi import APIRouter, Response

from hounsfield.archive.context import Archive
from hounsfield.archive.delete import remove
from hounsfield.catalog.partitions import Partition
from hounsfield.web.dicomweb.common import uids
from hounsfield.web.dicomweb.tenant import AtPartition


def router(archive: Archive) -> APIRouter:
    """The DELETE routes."""
    api = APIRouter()

    def gone(
        partition: Partition, study: str, series: str | None = None, sop: str | None = None
    ) -> Response:
        study, series, sop = uids(study, series, sop)
        remove(archive, study, series, sop, partition=partition)
        return Response(status_code=204)

    @api.delete("/studies/{study}")
    def delete_study(partition: AtPartition, study: str) -> Response:
        return gone(partition, study)

    @api.delete("/studies/{study}/series/{series}")
    def delete_series(partition: AtPartition, study: str, series: str) -> Response:
        return gone(partition, study, series)

    @api.delete("/studies/{study}/series/{series}/instances/{sop}")
    def delete_instance(partition: AtPartition, study: str, series: str, sop: str) -> Response:
        return gone(partition, study, series, sop)

    return api
