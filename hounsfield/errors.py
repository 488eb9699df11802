"""Archive errors; each carries the DIMSE status and the HTTP status that report it."""

from __future__ import annotations


class ArchiveError(Exception):
    """Base of every refusal the archive makes on purpose."""

    dimse_status: int = 0xC000
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidDataset(ArchiveError):
    """The dataset cannot be parsed or lacks what the archive needs."""

    dimse_status = 0xC000
    http_status = 400


class InvalidUID(InvalidDataset):
    """A UID is missing, too long or not made of digits and dots."""

    dimse_status = 0xC001


class SOPMismatch(InvalidDataset):
    """The dataset's SOP class or instance differs from the command's."""

    dimse_status = 0xA900


class DuplicateRejected(ArchiveError):
    """Another object with the same SOP Instance UID is stored and the policy is reject."""

    dimse_status = 0x0111
    http_status = 409


class StorageFull(ArchiveError):
    """No writable filesystem has room for the object."""

    dimse_status = 0xA700
    http_status = 507


class DatabaseUnavailable(ArchiveError):
    """The index database cannot be reached."""

    dimse_status = 0xA701
    http_status = 503


class NotFound(ArchiveError):
    """The requested object or device does not exist."""

    dimse_status = 0xC000
    http_status = 404


class SchemaOutdated(ArchiveError):
    """The database schema is older than this code."""

    http_status = 503
