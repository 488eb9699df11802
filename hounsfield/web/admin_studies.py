"""Admin API: a study's files, and migrate, compress, reprocess or delete it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from hounsfield.archive.context import Archive
from hounsfield.archive.delete import remove
from hounsfield.archive.study_files import study_files, study_pk
from hounsfield.archive.study_work import queue_compression, queue_migration, queue_reprocessing


class MigrateRequest(BaseModel):
    """Where to move a study's files."""

    source: str | None = Field(
        default=None, description="Filesystem path (default: the one holding it)"
    )
    target: str | None = Field(
        default=None, description="Filesystem path (default: next tier with room)"
    )


class CompressRequest(BaseModel):
    """How to compress a study."""

    syntax: str = Field(default="htj2k-lossless-rpcl", description="A lossless syntax")


def _queued(item: int | None) -> dict[str, Any]:
    return {"work_item": item, "queued": item is not None}


def mount(app: FastAPI, archive: Archive) -> None:
    """Add the study routes to `app`."""
    router = APIRouter(prefix="/admin/studies/{partition}/{uid}", tags=["admin"])

    @router.get("/files")
    def get_files(partition: str, uid: str) -> list[dict[str, Any]]:
        """Each file of the study: filesystem, tier, transfer syntax, size, last verified."""
        pk = study_pk(archive, archive.partition(partition), uid)
        return [asdict(f) for f in study_files(archive, pk)]

    @router.post("/migrate")
    def post_migrate(
        partition: str, uid: str, body: MigrateRequest | None = None
    ) -> dict[str, Any]:
        """Queue moving the study's files to another filesystem (`queued` false: one waits)."""
        wanted = body or MigrateRequest()
        return _queued(queue_migration(archive, partition, uid, wanted.source, wanted.target))

    @router.post("/compress")
    def post_compress(
        partition: str, uid: str, body: CompressRequest | None = None
    ) -> dict[str, Any]:
        """Queue compressing the study losslessly."""
        return _queued(
            queue_compression(archive, partition, uid, (body or CompressRequest()).syntax)
        )

    @router.post("/reprocess")
    def post_reprocess(partition: str, uid: str) -> dict[str, Any]:
        """Queue applying the rules again, forwarding and rebuilding the study's metadata."""
        return _queued(queue_reprocessing(archive, partition, uid))

    @router.delete("")
    def delete_study(partition: str, uid: str) -> dict[str, Any]:
        """Delete the study: its index rows at once, then its files."""
        return {"deleted": remove(archive, uid, partition=partition)}

    app.include_router(router)
