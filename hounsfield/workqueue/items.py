"""Work item vocabulary: priorities, statuses, kinds and the item as a worker sees it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any, Literal

StudyLock = Literal["write", "read"]


class Priority(IntEnum):
    """Lower runs first."""

    STAT = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3


class Status(StrEnum):
    """Where an item is in its life."""

    IDLE = "idle"  # waiting for a settle time; coalesces further requests
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


WAITING = (Status.IDLE.value, Status.PENDING.value)


@dataclass(frozen=True)
class Kind:
    """How items of one kind are run: defaults, retry policy, study lock, process pool."""

    name: str
    priority: Priority = Priority.NORMAL
    max_retries: int = 3
    backoff_seconds: float = 30.0
    study_lock: StudyLock | None = None
    heavy: bool = False  # CPU-bound: runs in the process pool

    def backoff(self, failures: int) -> float:
        """Seconds to wait before retry number `failures` (exponential, capped at an hour)."""
        return min(self.backoff_seconds * 2 ** max(failures - 1, 0), 3600.0)


@dataclass(frozen=True)
class WorkItem:
    """A claimed or listed item."""

    pk: int
    kind: str
    priority: int
    status: str
    scheduled_at: datetime
    failure_count: int
    max_retries: int
    node: str | None
    lease_token: str | None
    lease_expires_at: datetime | None
    study_key: str | None
    study_lock: str | None
    coalesce_key: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    result: str = ""
    error: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> WorkItem:
        """Build from a work_item row mapping."""
        return cls(
            pk=int(row["pk"]),
            kind=row["kind"],
            priority=row["priority"],
            status=row["status"],
            scheduled_at=utc(row["scheduled_at"]),  # type: ignore[arg-type]
            failure_count=row["failure_count"],
            max_retries=row["max_retries"],
            node=row["node"],
            lease_token=row["lease_token"],
            lease_expires_at=utc(row["lease_expires_at"]),
            study_key=row["study_key"],
            study_lock=row["study_lock"],
            coalesce_key=row["coalesce_key"],
            payload=json.loads(row["payload"] or "{}"),
            result=row["result"],
            error=row["error"],
            created_at=utc(row["created_at"]),
            updated_at=utc(row["updated_at"]),
            completed_at=utc(row["completed_at"]),
        )


@dataclass(frozen=True)
class Done:
    """A processor finished; `result` is kept with the item."""

    result: str = ""


class Failed(Exception):
    """A processor failed and says how the queue should take it: retry after `retry_in`
    seconds (instead of the kind's back-off), or give up now when `final` (dead-letter)."""

    def __init__(self, message: str, *, retry_in: float | None = None, final: bool = False):
        super().__init__(message)
        self.retry_in, self.final = retry_in, final


@dataclass(frozen=True)
class Later:
    """A processor wants to run again at `at` (not a failure: e.g. a study still settling)."""

    at: datetime
    reason: str = ""
    status: Status = Status.PENDING


def utc(value: datetime | None) -> datetime | None:
    """A timezone-aware UTC datetime (SQLite hands back naive ones)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def study_key(partition_pk: int, study_uid: str) -> str:
    """The study lock key of a study."""
    return f"{partition_pk}/{study_uid}"
