"""Coalesce arriving instances into one "process study" item per study (the ingest hook)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import Connection

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.workqueue.items import Status, now, study_key
from hounsfield.workqueue.queue import enqueue

log = logging.getLogger(__name__)
PROCESS_STUDY = "process-study"
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
        PROCESS_STUDY,
        {"partition": partition, "study": study_uid},
        at=at,
        study_key=key,
        coalesce_key=f"{PROCESS_STUDY}:{key}",
        status=Status.IDLE,
    )


def study_stored(archive: Archive, partition: str, study_uid: str) -> None:
    """Called after each stored object: make sure one idle item will process its study.

    The item itself waits until the study has been quiet for the settle time (it reads the
    study's last update), so within half a settle time one enqueue per study is enough."""
    settle = archive.settings.study_settle_seconds
    partition_pk = archive.partition_pk(partition)
    cache_key = (str(archive.engine.url), partition_pk, study_uid)
    tick = time.monotonic()
    with _RECENT_LOCK:
        last = _RECENT.get(cache_key)
        if last is not None and tick - last < settle / 2:
            return
        if len(_RECENT) >= _RECENT_MAX:
            _RECENT.clear()
        _RECENT[cache_key] = tick
    try:
        with db.write(archive.engine) as conn:
            at = now() + timedelta(seconds=settle)
            request_processing(conn, partition_pk, partition, study_uid, at)
    except Exception:
        with _RECENT_LOCK:
            _RECENT.pop(cache_key, None)
        log.exception("could not queue processing of study %s", study_uid)
