"""Admin API: POST /admin/verify, storage verification of a study, a filesystem or everything."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from hounsfield.archive.context import Archive
from hounsfield.lifecycle.verify import verify_storage


class VerifyRequest(BaseModel):
    """What to verify; everything when neither a study nor a filesystem is given."""

    study: str | None = Field(default=None, description="Study Instance UID")
    partition: str | None = Field(default=None, description="The study's partition AE title")
    filesystem: str | None = Field(default=None, description="A registered filesystem's path")


class VerifyResult(BaseModel):
    """What the verification found and did."""

    checked: int
    good: int
    bad: int = Field(description="wrong size or checksum, or unreadable")
    missing: int
    repaired: int = Field(description="bad or missing files restored from a good copy")
    unrepairable: int
    unreachable: int = Field(description="files not checked: their filesystem is unreachable")
    problems: list[str] = Field(description="one line per bad or missing file")
    unreachable_filesystems: list[str]


def mount(app: FastAPI, archive: Archive) -> None:
    """Add the storage verification route to `app`."""
    router = APIRouter(prefix="/admin", tags=["admin"])

    @router.post("/verify", response_model=VerifyResult)
    def post_verify(request: VerifyRequest | None = None) -> VerifyResult:
        """Re-read the files in scope now, check size and SHA-256 against the index, repair
        bad or missing ones from a good copy (the mirror's first) and raise alerts."""
        wanted = request or VerifyRequest()
        report = verify_storage(
            archive,
            study_uid=wanted.study,
            filesystem_path=wanted.filesystem,
            partition=wanted.partition,
        )
        return VerifyResult(**asdict(report))

    app.include_router(router)
