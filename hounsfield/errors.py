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


class MirrorUnavailable(ArchiveError):
    """The synchronous mirror of the filesystem an object went to could not take its copy."""

    dimse_status = 0xA700
    http_status = 503


class DatabaseUnavailable(ArchiveError):
    """The index database cannot be reached."""

    dimse_status = 0xA701
    http_status = 503


class NodeUnavailable(ArchiveError):
    """An extra process of a node did not get an answer from the node's own process."""

    dimse_status = 0xA701
    http_status = 503


class NotFound(ArchiveError):
    """The requested object or device does not exist."""

    dimse_status = 0xC000
    http_status = 404


class SchemaOutdated(ArchiveError):
    """The database schema is older than this code."""

    http_status = 503


class PartitionNotEmpty(ArchiveError):
    """A partition that still holds studies cannot be removed."""

    dimse_status = 0xC000
    http_status = 409


class VirtualPartition(ArchiveError):
    """The partition is virtual: it answers for its members and holds nothing itself."""

    dimse_status = 0x0124  # Refused: not authorized
    http_status = 403


class PeerError(ArchiveError):
    """An association this node opened to a peer, or a request over it, failed."""

    dimse_status = 0xC000
    http_status = 502


class PeerUnreachable(PeerError):
    """The peer refused the TCP connection, or its address cannot be reached or resolved."""


class AssociationRejected(PeerError):
    """The peer answered the association request with an A-ASSOCIATE-RJ, or accepted none of
    the proposed presentation contexts (then result, source and reason are None)."""

    def __init__(
        self,
        message: str,
        result: int | None = None,
        source: int | None = None,
        reason: int | None = None,
    ) -> None:
        super().__init__(message)
        self.result, self.source, self.reason = result, source, reason


class ServiceNotOffered(PeerError):
    """The peer accepted the association but not the presentation context of the service
    asked for (a PACS that answers C-MOVE but offers no C-GET)."""


class AssociationAborted(PeerError):
    """The peer aborted the association (A-ABORT) or closed the connection."""


class PeerTimeout(PeerError):
    """The peer did not answer in time; `phase` says which wait ran out: connect, ACSE or
    DIMSE."""

    http_status = 504

    def __init__(self, message: str, phase: str = "DIMSE") -> None:
        super().__init__(message)
        self.phase = phase


class PeerFailed(PeerError):
    """The peer answered a request with a failure status (kept in `status`)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class TooManyContexts(ArchiveError):
    """What is to be sent needs more presentation contexts than one association carries."""

    dimse_status = 0xA702


class ContextNotAccepted(ArchiveError):
    """The peer accepted no presentation context in which an object can be sent."""

    dimse_status = 0xA702
    http_status = 406


class Unauthenticated(ArchiveError):
    """The caller sent no credentials, or ones that are unknown, expired or revoked."""

    dimse_status = 0x0124  # Refused: not authorized
    http_status = 401


class Forbidden(ArchiveError):
    """The caller is known but their role or partitions do not allow the request."""

    dimse_status = 0x0124  # Refused: not authorized
    http_status = 403


class InvalidUser(ArchiveError):
    """A user name, role, partition list or password the archive cannot accept."""

    dimse_status = 0xC000
    http_status = 400


class UserExists(ArchiveError):
    """A user of that name exists already."""

    dimse_status = 0xC000
    http_status = 409


class InvalidRequest(ArchiveError):
    """A request's parameters cannot be understood."""

    dimse_status = 0xC000
    http_status = 400
