"""Work items about one study: coalesce arriving instances into one "process study" item per
study (the ingest hook), and queue its routing, migration and compression."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from hounsfield.workqueue.items import Status, now, study_key
from hounsfield.workqueue.kinds import COMPRESS_STUDY, MIGRATE_STUDY, PROCESS_STUDY, ROUTE_STUDY
from hounsfield.workqueue.queue import enqueue

_RECENT: dict[tuple[str, int, str], float] = {}
_ROUTED: dict[tuple[str, int, str], float] = {}
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


def request_routing(
    conn: Connection, partition_pk: int, partition: str, study_uid: str, after: float
) -> int | None:
    """Enqueue, in the caller's transaction, the forward rules that trigger on receipt for a
    study, `after` seconds from now (what arrives meanwhile goes with it)."""
    key = study_key(partition_pk, study_uid)
    return enqueue(
        conn,
        ROUTE_STUDY.name,
        {"partition": partition, "study": study_uid},
        at=now() + timedelta(seconds=after),
        coalesce_key=f"{ROUTE_STUDY.name}:{key}",
    )


def request_migration(
    conn: Connection,
    partition_pk: int,
    study_uid: str,
    study_pk: int,
    source_pk: int,
    target_pk: int | None = None,
) -> int | None:
    """Enqueue moving a study's files off filesystem `source_pk` (to `target_pk`, or the next
    tier with room), unless the same move already waits."""
    return enqueue(
        conn,
        MIGRATE_STUDY.name,
        {"study_pk": study_pk, "filesystem": source_pk, "target": target_pk},
        study_key=study_key(partition_pk, study_uid),
        coalesce_key=f"{MIGRATE_STUDY.name}:{study_pk}:{source_pk}",
    )


def request_compression(
    conn: Connection,
    partition_pk: int,
    study_uid: str,
    study_pk: int,
    action: str,
    params: Any,
) -> int | None:
    """Enqueue compressing a study (`action`: lossless-compress or lossy-compress, `params`
    as its rule outcome keeps them), unless a compression of it already waits."""
    return enqueue(
        conn,
        COMPRESS_STUDY.name,
        {"study_pk": study_pk, "action": action, "params": params},
        study_key=study_key(partition_pk, study_uid),
        coalesce_key=f"{COMPRESS_STUDY.name}:{study_pk}",
    )


class StudyStored:
    """The ingest hook, run inside the transaction that indexes an object: make sure one idle
    item will process its study.

    The item waits until the study has been quiet for the settle time (it reads the study's
    last update), so one enqueue per study per half settle time is enough; `committed` records
    it once the transaction has committed, and only then may later objects skip theirs."""

    def __init__(
        self,
        database: str,
        partition_pk: int,
        partition: str,
        study_uid: str,
        *,
        route_after: float | None = None,
    ) -> None:
        self.key = (database, partition_pk, study_uid)
        self.partition = partition
        self.route_after = route_after
        self.enqueued = self.routed = False

    def enqueue(self, conn: Connection, settle_seconds: float) -> None:
        """Queue processing (and routing) in `conn`'s transaction unless it was queued a
        moment ago."""
        with _RECENT_LOCK:
            last = _RECENT.get(self.key)
            routed = _ROUTED.get(self.key)
        current = time.monotonic()
        if self.route_after is not None and (
            routed is None or current - routed >= self.route_after / 2
        ):
            request_routing(conn, self.key[1], self.partition, self.key[2], self.route_after)
            self.routed = True
        if last is not None and current - last < settle_seconds / 2:
            return
        at = now() + timedelta(seconds=settle_seconds)
        request_processing(conn, self.key[1], self.partition, self.key[2], at)
        self.enqueued = True

    def committed(self) -> None:
        """The transaction committed: later objects of the study may skip their enqueue."""
        with _RECENT_LOCK:
            for done, recent in ((self.enqueued, _RECENT), (self.routed, _ROUTED)):
                if not done:
                    continue
                if len(recent) >= _RECENT_MAX:
                    recent.clear()
                recent[self.key] = time.monotonic()


def forget_recent() -> None:
    """Forget which studies were queued recently (tests, and after an operator purge)."""
    with _RECENT_LOCK:
        _RECENT.clear()
        _ROUTED.clear()
