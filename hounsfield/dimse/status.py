"""Map archive errors to DIMSE status datasets."""

from __future__ import annotations

import logging

from pydicom.dataset import Dataset

from hounsfield.errors import ArchiveError, DatabaseUnavailable, InvalidDataset, StorageFull
from hounsfield.metrics import FAILURES

log = logging.getLogger(__name__)

PROCESSING_FAILURE = 0x0110
QUERY_OUT_OF_RESOURCES = 0xA700
IDENTIFIER_MISMATCH = 0xA900
UNABLE_TO_PROCESS = 0xC000


def status(code: int, comment: str = "") -> Dataset:
    """A status dataset with an optional Error Comment (at most 64 characters)."""
    ds = Dataset()
    ds.Status = code
    if comment and code not in (0x0000, 0xFF00, 0xFF01, 0xFE00):
        ds.ErrorComment = comment.replace("\\", "/")[:64]
    return ds


def store_failure(exc: BaseException) -> Dataset:
    """The C-STORE status for an error raised while storing."""
    if isinstance(exc, ArchiveError):
        FAILURES.labels("store", type(exc).__name__).inc()
        log.warning("C-STORE refused: %s", exc.message)
        return status(exc.dimse_status, exc.message)
    if isinstance(exc, OSError):
        FAILURES.labels("store", "OSError").inc()
        log.error("C-STORE failed on storage: %s", exc)
        return status(StorageFull.dimse_status, f"storage error: {exc.strerror or exc}")
    FAILURES.labels("store", "internal").inc()
    log.exception("C-STORE failed", exc_info=exc)
    return status(PROCESSING_FAILURE, f"internal error: {type(exc).__name__}")


def query_failure(operation: str, exc: BaseException) -> int:
    """The C-FIND / C-MOVE / C-GET failure status for an error."""
    FAILURES.labels(operation, type(exc).__name__).inc()
    if isinstance(exc, InvalidDataset):
        log.warning("%s refused: %s", operation, exc.message)
        return IDENTIFIER_MISMATCH
    if isinstance(exc, DatabaseUnavailable):
        log.error("%s failed: %s", operation, exc.message)
        return QUERY_OUT_OF_RESOURCES
    log.exception("%s failed", operation, exc_info=exc)
    return UNABLE_TO_PROCESS
