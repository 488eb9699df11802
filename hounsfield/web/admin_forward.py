"""Admin API: /admin/devices and /admin/forwards (queue, follow and retry forwards)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, FastAPI, Query
from pydantic import BaseModel, Field

from hounsfield.archive.context import Archive
from hounsfield.sites.devices import Device, add_device, list_devices, remove_device
from hounsfield.sites.forward import forward_studies, retry_failed
from hounsfield.sites.forward_state import Forward, list_forwards


class DeviceIn(BaseModel):
    """A device as the API takes it."""

    host: str
    port: int = Field(ge=1, le=65535)
    description: str = ""
    protocol: str = "dimse"
    url: str = ""
    associations: int = Field(default=1, ge=1, le=16)
    bandwidth_kbps: int | None = Field(default=None, ge=8)
    commitment: bool = False
    alternates: list[str] = []  # further "host:port" addresses of the same AE
    tls: bool = False  # associate over TLS


class ForwardRequest(BaseModel):
    """What to forward to a destination: a study (or one series), a patient's studies or
    the studies of a date range (YYYYMMDD, inclusive)."""

    destination: str
    study: str | None = None
    series: str | None = None
    patient_id: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    partition: str | None = None


def _forward(f: Forward) -> dict[str, Any]:
    out = asdict(f)
    for key, value in out.items():
        if hasattr(value, "isoformat"):
            out[key] = value.isoformat()
    return out


def mount(app: FastAPI, archive: Archive) -> None:
    """Add the device and forwarding admin routes to `app`."""
    router = APIRouter(prefix="/admin", tags=["admin"])

    @router.get("/devices")
    def get_devices() -> list[dict[str, Any]]:
        return [asdict(d) for d in list_devices(archive)]

    @router.put("/devices/{ae_title}")
    def put_device(ae_title: str, body: DeviceIn) -> dict[str, Any]:
        fields = body.model_dump()
        fields["alternates"] = tuple(body.alternates)
        new = add_device(archive, Device(ae_title, **fields))
        return {"ae_title": ae_title, "created": new}

    @router.delete("/devices/{ae_title}")
    def delete_device(ae_title: str) -> dict[str, Any]:
        remove_device(archive, ae_title)
        return {"ae_title": ae_title, "removed": True}

    @router.get("/forwards")
    def get_forwards(
        destination: str | None = None,
        state: str | None = None,
        study: str | None = None,
        limit: int = Query(200, ge=1, le=10_000),
    ) -> list[dict[str, Any]]:
        rows = list_forwards(
            archive.engine, destination=destination, state=state, study=study, limit=limit
        )
        return [_forward(f) for f in rows]

    @router.post("/forwards", status_code=202)
    def post_forwards(body: ForwardRequest) -> dict[str, Any]:
        uids = forward_studies(
            archive,
            body.destination,
            study=body.study,
            series=body.series,
            patient_id=body.patient_id,
            date_from=body.date_from,
            date_to=body.date_to,
            partition=body.partition,
        )
        return {"destination": body.destination, "queued": uids}

    @router.post("/forwards/retry")
    def post_forwards_retry(
        destination: str | None = None, pk: int | None = None
    ) -> dict[str, Any]:
        again = retry_failed(archive, destination=destination, pk=pk)
        return {"queued": [f.pk for f in again]}

    app.include_router(router)
