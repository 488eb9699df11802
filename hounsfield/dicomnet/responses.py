"""C-FIND answers and C-MOVE / C-GET progress, read as they arrive; stopping early cancels."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, Self

from pydicom.dataset import Dataset

from hounsfield.errors import PeerError, PeerFailed

PENDING = (0xFF00, 0xFF01)
CANCELLED = 0xFE00
SUCCESS = 0x0000


def is_failure(code: int) -> bool:
    """Whether a final status is a failure (neither success, warning nor cancel)."""
    return not (code in (SUCCESS, CANCELLED, 0x0001) or code & 0xF000 == 0xB000)


class Owner(Protocol):
    """What a stream needs from the association it runs on."""

    def failure(self, doing: str) -> PeerError:
        """The error for a request that got no (valid) final response."""
        ...

    def send_cancel(self, msg_id: int, model: str) -> None:
        """Send a C-CANCEL for the request `msg_id`."""
        ...


class _Stream:
    """The responses to one request; C-CANCEL when closed before its final response."""

    doing = "request"

    def __init__(
        self, owner: Owner, responses: Iterator[tuple[Dataset, Any]], msg_id: int, model: str
    ) -> None:
        self._owner, self._responses = owner, responses
        self.msg_id, self.model = msg_id, model
        self.finished = False
        self.cancelled = False
        self.status: int | None = None
        self.comment = ""

    def _next(self) -> tuple[int, Dataset, Any]:
        try:
            status, identifier = next(self._responses)
        except StopIteration:
            status, identifier = Dataset(), None
        if "Status" not in status:
            self.finished = True
            raise self._owner.failure(self.doing)
        code = int(status.Status)
        if code not in PENDING:
            self.finished = True
            self.status = code
            self.comment = str(status.get("ErrorComment", "") or "")
        return code, status, identifier

    def _drain(self) -> None:
        while not self.finished:
            self._next()

    def cancel(self) -> int | None:
        """Ask the peer to stop (C-CANCEL), read what it still sends, and return the final
        status; nothing is sent once the final response has arrived."""
        if not self.finished and not self.cancelled:
            self.cancelled = True
            self._owner.send_cancel(self.msg_id, self.model)
        self._drain()
        return self.status

    close = cancel

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None or not isinstance(exc[1], PeerError):
            self.cancel()


class FindStream(_Stream, Iterator[Dataset]):
    """The matches of a C-FIND, each as it arrives. A failure status raises PeerFailed;
    `status` holds the final status once the iteration ended."""

    doing = "C-FIND"

    def __iter__(self) -> FindStream:
        return self

    def __next__(self) -> Dataset:
        if self.finished:
            raise StopIteration
        code, _status, identifier = self._next()
        if code in PENDING:
            return identifier if identifier is not None else Dataset()
        if is_failure(code):
            raise PeerFailed(f"C-FIND failed: status 0x{code:04X} {self.comment}".strip(), code)
        raise StopIteration


@dataclass(frozen=True)
class Progress:
    """Sub-operation counts of a C-MOVE or C-GET pending response."""

    remaining: int | None
    completed: int
    failed: int
    warning: int


@dataclass(frozen=True)
class RetrieveResult:
    """How a C-MOVE or C-GET ended."""

    status: int
    completed: int
    failed: int
    warning: int
    failed_instances: tuple[str, ...] = ()
    comment: str = ""

    @property
    def ok(self) -> bool:
        """Every sub-operation succeeded."""
        return self.status == SUCCESS and self.failed == 0


def _count(status: Dataset, keyword: str, before: int | None) -> int | None:
    value = status.get(keyword)
    return int(value) if value is not None else before


def _uids(identifier: Any) -> tuple[str, ...]:
    value = identifier.get("FailedSOPInstanceUIDList") if identifier is not None else None
    if value is None or value == "":
        return ()
    values = [value] if isinstance(value, str) else list(value)
    return tuple(str(v) for v in values if str(v))


class RetrieveStream(_Stream, Iterator[Progress]):
    """The progress of a C-MOVE or C-GET, one item per pending response; `result` once it
    ended (a failure status is a result too: see `RetrieveResult.ok`)."""

    def __init__(self, *args: Any, doing: str) -> None:
        super().__init__(*args)
        self.doing = doing
        self.result: RetrieveResult | None = None
        self._last = Progress(None, 0, 0, 0)

    def __iter__(self) -> RetrieveStream:
        return self

    def _next(self) -> tuple[int, Dataset, Any]:
        code, status, identifier = super()._next()
        last = self._last
        self._last = Progress(
            _count(status, "NumberOfRemainingSuboperations", None),
            _count(status, "NumberOfCompletedSuboperations", last.completed) or 0,
            _count(status, "NumberOfFailedSuboperations", last.failed) or 0,
            _count(status, "NumberOfWarningSuboperations", last.warning) or 0,
        )
        if code not in PENDING:
            p = self._last
            uids = _uids(identifier)
            self.result = RetrieveResult(code, p.completed, p.failed, p.warning, uids, self.comment)
        return code, status, identifier

    def __next__(self) -> Progress:
        if self.finished:
            raise StopIteration
        code, _status, _identifier = self._next()
        if code in PENDING:
            return self._last
        raise StopIteration

    def wait(self, on_progress: Callable[[Progress], object] | None = None) -> RetrieveResult:
        """Read to the end, telling `on_progress` each pending count; the result."""
        for progress in self:
            if on_progress is not None:
                on_progress(progress)
        assert self.result is not None
        return self.result
