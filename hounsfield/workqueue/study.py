"""Coalesce arriving instances into one "process study" item per study (the ingest hook)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import Connection

from hounsfield.workqueue.items import Status, now, study_key
from hounsfield.workqueue.kinds import PROCESS_STUDY
from hounsfield.workqueue.queue import enqueue

_RECENT: dict[tuple[str, int, str], float] = {}
_RECENT_LOCK = threading.Lock()
_RECENT_MAX = 10_000


def request_processing(
    conn: Connection,
    partition_pk: int,
    partition: str,
    study_uid: str,
    at: datetime | None = None,
) -> int | None:
    """Enqueue processing of a study in the caller's transaction, unless one already waits."""
    key = study_key(partition_pk, study_uid)
    return enqueue(
        conn,
        PROCESS_STUDY.name,
        {"partition": partition, "study": study_uid},
        at=at,
        study_key=key,
        coalesce_key=f"{PROCESS_STUDY.name}:{key}",
        status=Status.IDLE,
    )


class StudyStored:
    """The ingest hook, run inside the transaction that indexes an object: make sure one idle
    item will process its study.

    The item waits until the study has been quiet for the settle time (it reads the study's
    last update), so one enqueue per study per half settle time is enough; `committed` records
    it once the transaction has committed, and only then may later objects skip theirs."""

    def __init__(self, database: str, partition_pk: int, partition: str, study_uid: str) -> None:
        self.key = (database, partition_pk, study_uid)
        self.partition = partition
        self.enqueued = False

    def enqueue(self, conn: Connection, settle_seconds: float) -> None:
        """Queue processing in `conn`'s transaction unless it was queued a moment ago."""
        with _RECENT_LOCK:
            last = _RECENT.get(self.key)
        if last is not None and time.monotonic() - last < settle_seconds / 2:
            return
        at = now() + timedelta(seconds=settle_seconds)
        request_processing(conn, self.key[1], self.partition, self.key[2], at)
        self.enqueued = True

    def committed(self) -> None:
        """The transaction committed: later objects of the study may skip their enqueue."""
        if not self.enqueued:
            return
        with _RECENT_LOCK:
            if len(_RECENT) >= _RECENT_MAX:
                _RECENT.clear()
            _RECENT[self.key] = time.monotonic()


def forget_recent() -> None:
    """Forget which studies were queued recently (tests, and after an operator purge)."""
    with _RECENT_LOCK:
        _RECENT.clear()
