"""Admin API: GET /admin/audit, the audit trail filtered (admins only; the reading is
recorded too)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, Field

from hounsfield.archive.context import Archive
from hounsfield.audit.records import AuditFilter, list_records
from hounsfield.web.audit_filter import audit_filter


class AuditRecordModel(BaseModel):
    """One record of the audit trail."""

    pk: int
    created_at: datetime
    event: str = Field(description="association, association-refused, query, retrieve, ...")
    outcome: int = Field(description="0 success, 4 minor, 8 serious, 12 major failure")
    outcome_text: str
    user: str = Field(description="the user name, or the calling AE title")
    ae_title: str = Field(description="the calling AE title (DICOM), or the sending partition")
    host: str = Field(description="the caller's address")
    called: str = Field(description="the called AE title, or the destination")
    protocol: str = Field(description="DICOM, DICOM-TLS, DICOMweb, HTTP, CLI or system")
    partition: str
    patient_id: str
    patient_name: str
    study_uid: str
    count: int = Field(description="instances (DICOM), requests (HTTP) or matches (queries)")
    detail: str
    node: str


def mount(app: FastAPI, archive: Archive) -> None:
    """Add the audit route to `app`."""
    router = APIRouter(prefix="/admin/audit", tags=["admin"])

    @router.get("", response_model=list[AuditRecordModel])
    async def get_audit(
        wanted: Annotated[AuditFilter, Depends(audit_filter)],
    ) -> list[AuditRecordModel]:
        """Audit records, newest first: who (user or AE title, address) did what (event,
        patient, study), when, with what outcome."""
        rows = await to_thread.run_sync(list_records, archive.engine, wanted)
        return [AuditRecordModel(**r.as_dict()) for r in rows]

    app.include_router(router)
