"""Admin API: GET /admin/cluster (the nodes and their state), drain and resume a node."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from hounsfield.archive.context import Archive
from hounsfield.cluster import nodes


class NodeModel(BaseModel):
    """A node of the cluster as the registry sees it."""

    name: str
    address: str
    dimse_port: int
    http_port: int
    version: str
    pid: int
    runs: list[str] = Field(description="dimse, http, workers, scheduler")
    started_at: datetime
    beat_at: datetime = Field(description="its last heartbeat")
    stopped_at: datetime | None = Field(description="set when it stopped cleanly")
    state: str = Field(description="up, suspect, down, draining or stopped")
    healthy: bool = Field(description="its storage took its last probe write")
    problem: str
    associations: int = Field(description="DICOM associations open at its last beat")
    holds: int = Field(description="work items in progress under its lease")


def mount(app: FastAPI, archive: Archive) -> None:
    """Add the cluster routes to `app`."""
    router = APIRouter(prefix="/admin/cluster", tags=["admin"])
    settings = archive.settings

    def listed() -> list[NodeModel]:
        rows = nodes.list_nodes(
            archive.engine, settings.heartbeat_seconds, settings.node_down_seconds
        )
        return [NodeModel(**row.as_dict()) for row in rows]

    @router.get("", response_model=list[NodeModel])
    def get_cluster() -> list[NodeModel]:
        """Every registered node, its state judged from its last heartbeat, and its work."""
        return listed()

    @router.post("/{name}/drain", response_model=list[NodeModel])
    def post_drain(name: str) -> list[NodeModel]:
        """Let a node finish its associations and work items and take no new ones (its
        /health answers 503, new associations are refused as transient congestion)."""
        nodes.set_draining(archive.engine, name, True)
        return listed()

    @router.post("/{name}/resume", response_model=list[NodeModel])
    def post_resume(name: str) -> list[NodeModel]:
        """Let a drained node serve again."""
        nodes.set_draining(archive.engine, name, False)
        return listed()

    app.include_router(router)
