"""The work queue: filters, counts, running items with their progress, retry and cancel."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hounsfield.archive.context import Archive
from hounsfield.errors import InvalidDataset
from hounsfield.sites.forward_state import get_forward
from hounsfield.web.ui.render import page, wants_fragment
from hounsfield.workqueue import admin
from hounsfield.workqueue.items import Status, WorkItem
from hounsfield.workqueue.kinds import FORWARD_STUDY, KINDS

RETRYABLE = (Status.FAILED.value, Status.CANCELLED.value)
CANCELLABLE = (
    Status.IDLE.value,
    Status.PENDING.value,
    Status.IN_PROGRESS.value,
    Status.FAILED.value,
)


@dataclass(frozen=True)
class Row:
    """A work item as its row shows it: what it may do next and how far it got."""

    item: WorkItem
    progress: str = ""
    percent: float | None = None

    @property
    def retryable(self) -> bool:
        """Failed or cancelled: it may run again."""
        return self.item.status in RETRYABLE

    @property
    def cancellable(self) -> bool:
        """Not finished: it may be cancelled."""
        return self.item.status in CANCELLABLE


def row_of(archive: Archive, item: WorkItem) -> Row:
    """An item with its progress: a forward's instances sent, else its last result."""
    if item.kind == FORWARD_STUDY.name and item.payload.get("forward"):
        found = get_forward(archive.engine, int(item.payload["forward"]))
        if found is not None and found.instances:
            percent = 100.0 * found.sent / found.instances
            return Row(item, f"{found.sent} of {found.instances} sent", percent)
    return Row(item, item.result if item.status == Status.IN_PROGRESS.value else "")


def routes(archive: Archive) -> APIRouter:
    """The work queue page of `archive`."""
    router = APIRouter()
    engine = archive.engine

    @router.get("/queue", response_class=HTMLResponse)
    def get_queue(
        request: Request, status: str = "", kind: str = "", limit: int = 200
    ) -> HTMLResponse:
        try:
            items = admin.list_items(
                engine, status=status or None, kind=kind or None, limit=min(limit, 1000)
            )
        except ValueError as exc:
            raise InvalidDataset(f"unknown status {status!r}") from exc
        name = "queue_table.html" if wants_fragment(request, "queue") else "queue.html"
        return page(
            request,
            name,
            rows=[row_of(archive, i) for i in items],
            counts=sorted(admin.counts(engine).items()),
            statuses=[s.value for s in Status],
            kinds=sorted(KINDS),
            status=status,
            kind=kind,
        )

    @router.post("/queue/{pk}/retry", response_class=HTMLResponse)
    def post_retry(request: Request, pk: int) -> HTMLResponse:
        return page(request, "queue_row.html", row=row_of(archive, admin.retry(engine, pk)))

    @router.post("/queue/{pk}/cancel", response_class=HTMLResponse)
    def post_cancel(request: Request, pk: int) -> HTMLResponse:
        return page(request, "queue_row.html", row=row_of(archive, admin.cancel(engine, pk)))

    return router
