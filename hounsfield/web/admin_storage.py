"""Admin API: /admin/queue, /admin/services, /admin/filesystems and /admin/alerts."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import JSONResponse

from hounsfield.alerts import list_alerts
from hounsfield.archive.context import Archive
from hounsfield.errors import InvalidDataset
from hounsfield.scheduled import lock
from hounsfield.settings import FilesystemConfig
from hounsfield.storage.tiers import add_filesystem, list_filesystems
from hounsfield.workqueue import admin
from hounsfield.workqueue.items import WorkItem


def _item(item: WorkItem) -> dict[str, Any]:
    out = asdict(item)
    out.pop("lease_token")
    for key, value in out.items():
        if hasattr(value, "isoformat"):
            out[key] = value.isoformat()
    return out


def mount(app: FastAPI, archive: Archive) -> None:
    """Add the storage-management admin routes to `app`."""
    router = APIRouter(prefix="/admin", tags=["admin"])
    engine = archive.engine

    @router.get("/queue")
    def get_queue(
        status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> JSONResponse:
        try:
            items = admin.list_items(engine, status=status, kind=kind, limit=min(limit, 1000))
        except ValueError as exc:
            raise InvalidDataset(f"unknown status {status!r}") from exc
        return JSONResponse(
            {"counts": dict(admin.counts(engine)), "items": [_item(i) for i in items]}
        )

    @router.get("/queue/{pk}")
    def get_queue_item(pk: int) -> JSONResponse:
        return JSONResponse(_item(admin.get_item(engine, pk)))

    @router.post("/queue/{pk}/retry")
    def retry_queue_item(pk: int) -> JSONResponse:
        return JSONResponse(_item(admin.retry(engine, pk)))

    @router.post("/queue/{pk}/cancel")
    def cancel_queue_item(pk: int) -> JSONResponse:
        return JSONResponse(_item(admin.cancel(engine, pk)))

    @router.get("/services")
    def get_services() -> JSONResponse:
        rows = lock.list_services(engine)
        return JSONResponse(
            [
                {
                    "name": r.name,
                    "enabled": r.enabled,
                    "interval_seconds": r.interval_seconds,
                    "next_run_at": r.next_run_at.isoformat(),
                    "locked_by": r.locked_by if r.locked else None,
                    "last_run_at": r.last_run_at.isoformat() if r.last_run_at else None,
                    "last_result": r.last_result,
                }
                for r in rows
            ]
        )

    @router.get("/filesystems")
    def get_filesystems() -> JSONResponse:
        return JSONResponse([asdict(u) | {"percent": u.percent} for u in list_filesystems(engine)])

    @router.post("/filesystems")
    def post_filesystem(declared: FilesystemConfig) -> JSONResponse:
        """Add a filesystem (or update the one at `path`), as `hounsfield filesystem add`;
        `mirror_of` makes it the mirror of that filesystem, in `mirror_mode` sync or async."""
        new = add_filesystem(engine, declared.path, **declared.model_dump(exclude={"path"}))
        archive.filesystems.invalidate()
        path = str(declared.path.resolve())
        usage = next(u for u in list_filesystems(engine) if u.path == path)
        return JSONResponse(
            asdict(usage) | {"percent": usage.percent}, status_code=201 if new else 200
        )

    @router.get("/alerts")
    def get_alerts(limit: int = Query(100, ge=1, le=10_000)) -> JSONResponse:
        return JSONResponse(
            [
                asdict(a) | {"created_at": a.created_at.isoformat()}
                for a in list_alerts(engine, limit)
            ]
        )

    app.include_router(router)
