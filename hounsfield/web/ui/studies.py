"""Studies: the search, the study page and its actions (migrate, compress, forward, delete)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from hounsfield.archive.context import Archive
from hounsfield.archive.delete import remove
from hounsfield.archive.study_files import study_files, study_pk
from hounsfield.archive.study_work import queue_compression, queue_migration, queue_reprocessing
from hounsfield.errors import NotFound
from hounsfield.imaging.compress import LOSSLESS
from hounsfield.rules.saved import outcomes
from hounsfield.sites.devices import list_devices
from hounsfield.sites.forward import forward_studies
from hounsfield.sites.forward_state import list_forwards
from hounsfield.storage.tiers import list_filesystems
from hounsfield.web.ui.render import page, redirect, wants_fragment
from hounsfield.web.ui.study_search import Search, one_study, search_studies, study_series
from hounsfield.web.viewer.config import study_link
from hounsfield.workqueue.admin import study_items


def routes(archive: Archive) -> APIRouter:
    """The study pages of `archive`."""
    router = APIRouter()

    def local_partitions() -> list[str]:
        return [p.ae_title for p in archive.partitions() if not p.virtual]

    @router.get("/studies", response_class=HTMLResponse)
    def get_studies(request: Request, wanted: Annotated[Search, Depends()]) -> HTMLResponse:
        found = [] if wanted.empty else search_studies(archive, wanted)
        partition = wanted.partition or archive.default_partition
        context = {"wanted": wanted, "studies": found, "partition": partition}
        if wants_fragment(request, "results"):
            return page(request, "study_results.html", **context)
        return page(request, "studies.html", partitions=local_partitions(), **context)

    def study_page(request: Request, partition: str, uid: str, notice: str = "") -> HTMLResponse:
        part = archive.partition(partition)
        pk = study_pk(archive, part, uid)
        summary = one_study(archive, part.ae_title, uid)
        if summary is None:
            raise NotFound(f"no study {uid} in partition {part.ae_title}")
        files = study_files(archive, pk)
        holding = {f.filesystem_pk for f in files if not f.mirror}
        usages = list_filesystems(archive.engine)
        return page(
            request,
            "study.html",
            partition=part.ae_title,
            uid=uid,
            study=summary,
            series=study_series(archive, part.ae_title, uid),
            files=files,
            outcomes=sorted(outcomes(archive.engine, pk).items(), key=lambda kv: kv[1]),
            items=study_items(archive.engine, part.pk, uid),
            forwards=[
                f for f in list_forwards(archive.engine, study=uid) if f.partition == part.ae_title
            ],
            devices=[d.ae_title for d in list_devices(archive)],
            sources=[u for u in usages if u.pk in holding],
            targets=[u for u in usages if u.enabled and not u.read_only and not u.is_mirror],
            syntaxes=LOSSLESS,
            viewer=study_link(uid, part.ae_title, archive.default_partition),
            notice=notice,
        )

    @router.get("/studies/{partition}/{uid}", response_class=HTMLResponse)
    def get_study(request: Request, partition: str, uid: str) -> HTMLResponse:
        return study_page(request, partition, uid)

    @router.post("/studies/{partition}/{uid}/delete")
    def post_delete(partition: str, uid: str) -> Response:
        count = remove(archive, uid, partition=partition)
        notice = quote(f"deleted study {uid} ({count} instances)")
        return redirect(f"/ui/studies?partition={quote(partition)}&notice={notice}")

    @router.post("/studies/{partition}/{uid}/migrate", response_class=HTMLResponse)
    def post_migrate(
        request: Request,
        partition: str,
        uid: str,
        source: Annotated[int, Form()],
        target: Annotated[str, Form()] = "",
    ) -> HTMLResponse:
        item = queue_migration(archive, partition, uid, source, int(target) if target else None)
        return study_page(request, partition, uid, _queued("migration", item))

    @router.post("/studies/{partition}/{uid}/compress", response_class=HTMLResponse)
    def post_compress(
        request: Request, partition: str, uid: str, syntax: Annotated[str, Form()]
    ) -> HTMLResponse:
        item = queue_compression(archive, partition, uid, syntax)
        return study_page(request, partition, uid, _queued(f"{syntax} compression", item))

    @router.post("/studies/{partition}/{uid}/reprocess", response_class=HTMLResponse)
    def post_reprocess(request: Request, partition: str, uid: str) -> HTMLResponse:
        item = queue_reprocessing(archive, partition, uid)
        return study_page(request, partition, uid, _queued("reprocessing", item))

    @router.post("/studies/{partition}/{uid}/forward", response_class=HTMLResponse)
    def post_forward(
        request: Request, partition: str, uid: str, destination: Annotated[str, Form()]
    ) -> HTMLResponse:
        forward_studies(archive, destination, study=uid, partition=partition)
        return study_page(request, partition, uid, f"forward to {destination} queued")

    return router


def _queued(what: str, item: int | None) -> str:
    """The notice after queueing work on a study."""
    if item is None:
        return f"{what} is already waiting in the queue"
    return f"{what} queued as work item {item}"
