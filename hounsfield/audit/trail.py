"""The audit trail's writer: events are recorded without waiting, alike ones that come close
together are counted into one record, and a thread writes them to the database in batches
(and hands them to the syslog sender, when one is set)."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from hounsfield.audit.events import SUCCESS, Actor, AuditEvent, current_actor
from hounsfield.audit.syslog import SyslogSender
from hounsfield.db import engine as db
from hounsfield.db.tables import audit_event, partition, patient, study
from hounsfield.errors import DatabaseUnavailable
from hounsfield.settings import Settings

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5  # the longest an event waits to be written
WAKE_AT = 500  # queued events that start a write before FLUSH_SECONDS is up
IDLE_SECONDS = 30.0
RETRY_SECONDS = 5.0  # after the database refused a batch
HELD_AT_MOST = 100_000  # events kept for a database that does not answer
Sink = Callable[[Sequence[AuditEvent]], None]


def _now() -> datetime:
    return datetime.now(UTC)


class AuditTrail:
    """Records audit events of one database. `coalesce` events (stores, retrieves) of the
    same actor, study, kind and outcome within `window` seconds become one record with their
    count: one per study and caller, as ATNA asks for transfers, at no cost per instance."""

    def __init__(self, engine: Engine, node: str = "", window: float = 5.0) -> None:
        self.engine, self.node, self.window = engine, node[:64], window
        self.sinks: list[Sink] = []
        self._queue: list[AuditEvent] = []
        self._pending: dict[tuple[object, ...], AuditEvent] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._retry_at = 0.0

    def record(self, event: AuditEvent, *, coalesce: bool = False) -> None:
        """Keep `event` for the next write."""
        if event.created_at is None:
            event.created_at = _now()
        event.node = event.node or self.node
        with self._lock:
            if coalesce:
                held = self._pending.get(event.key())
                if held is not None:
                    held.count += event.count
                    return
                self._pending[event.key()] = event
            else:
                self._queue.append(event)
            full = len(self._queue) >= WAKE_AT
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._loop, name="audit", daemon=True)
                self._thread.start()
        if full:  # else the writer's next turn (FLUSH_SECONDS) takes it, with its neighbours
            self._wake.set()

    def _loop(self) -> None:
        """Write every FLUSH_SECONDS (sooner when woken); end after IDLE_SECONDS with nothing
        to write (the next record starts the writer again)."""
        idle_since = time.monotonic()
        while not self._stopped:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            if self.flush():
                idle_since = time.monotonic()
            with self._lock:
                if self._queue or self._pending:
                    continue
                if time.monotonic() - idle_since > IDLE_SECONDS:
                    self._thread = None
                    return

    def flush(self, *, everything: bool = False) -> int:
        """Write what is due (`everything`: also what is still being counted); returns how
        many records were written."""
        with self._flushing:
            if not everything and time.monotonic() < self._retry_at:
                return 0
            with self._lock:
                batch, self._queue = self._queue, []
                due = _now() - timedelta(seconds=self.window)
                ready = [
                    k
                    for k, e in self._pending.items()
                    if everything or (e.created_at is not None and e.created_at <= due)
                ]
                batch.extend(self._pending.pop(k) for k in ready)
            if not batch:
                return 0
            try:
                self._add_patients(batch)
                written = self._write(batch)
            except DatabaseUnavailable as exc:
                self._hold(batch, exc)
                self._retry_at = time.monotonic() + RETRY_SECONDS
                return 0
            for sink in self.sinks:
                try:
                    sink(batch)
                except Exception:
                    log.exception("audit events not handed to a sink")
            return written

    def _write(self, batch: list[AuditEvent]) -> int:
        """Insert the batch; when the database refuses it for its data (not for being away),
        insert one by one and log what it refuses, so one bad record holds up no other."""
        try:
            with db.write(self.engine) as conn:
                conn.execute(audit_event.insert(), [_row(e) for e in batch])
            return len(batch)
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            if len(batch) == 1:
                log.error("audit record refused by the database, dropped: %s (%s)", batch[0], exc)
                return 0
        return sum(self._write([e]) for e in batch)

    def _hold(self, batch: list[AuditEvent], exc: Exception) -> None:
        """Keep a batch the database did not take for the next try (up to a limit)."""
        with self._lock:
            self._queue[:0] = batch
            lost = len(self._queue) - HELD_AT_MOST
            if lost > 0:
                del self._queue[:lost]
        log.error("audit trail not written (%d events held): %s", len(batch), exc)
        if lost > 0:
            log.critical("audit trail: %d events dropped, the database is unavailable", lost)

    def _add_patients(self, batch: list[AuditEvent]) -> None:
        """Name the patient of events that know only their study."""
        wanted = {e.study_uid for e in batch if e.study_uid and not e.patient_id}
        if not wanted:
            return
        stmt = (
            select(
                study.c.study_iuid,
                partition.c.ae_title,
                patient.c.patient_id,
                patient.c.patient_name,
            )
            .join(patient, patient.c.pk == study.c.patient_pk)
            .join(partition, partition.c.pk == study.c.partition_pk)
            .where(study.c.study_iuid.in_(sorted(wanted)))
        )
        with db.read(self.engine) as conn:
            rows = conn.execute(stmt).all()
        found: dict[tuple[str, str], tuple[str, str]] = {}
        for uid, title, pid, name in rows:
            found[(uid, title)] = (pid, name)
            found.setdefault((uid, ""), (pid, name))
        for e in batch:
            if e.study_uid and not e.patient_id:
                pid, name = found.get((e.study_uid, e.partition)) or found.get(
                    (e.study_uid, ""), ("", "")
                )
                e.patient_id, e.patient_name = pid, e.patient_name or name

    def close(self) -> None:
        """Write everything held, then stop the writer (and the sinks)."""
        self._stopped = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
        self.flush(everything=True)
        for sink in self.sinks:
            closing = getattr(sink, "close", None)
            if closing is not None:
                closing()


def _text(value: str, size: int | None = None) -> str:
    """A value as the database takes it: no NUL (PostgreSQL refuses them), cut to `size`."""
    value = value.replace("\x00", "")
    return value if size is None else value[:size]


def _row(e: AuditEvent) -> dict[str, Any]:
    a = e.actor
    return {
        "created_at": e.created_at,
        "event": _text(e.kind, 32),
        "outcome": e.outcome,
        "user_name": _text(a.user, 128),
        "ae_title": _text(a.ae_title, 16),
        "remote_host": _text(a.host, 64),
        "called": _text(a.called, 64),
        "protocol": _text(a.protocol, 16),
        "partition": _text(e.partition, 16),
        "patient_id": _text(e.patient_id, 64),
        "patient_name": _text(e.patient_name, 324),
        "study_iuid": _text(e.study_uid, 64),
        "count": e.count,
        "detail": _text(e.detail),
        "node": _text(e.node, 64),
    }


_trails: weakref.WeakKeyDictionary[Engine, AuditTrail] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def install(engine: Engine, trail: AuditTrail) -> AuditTrail:
    """Make `trail` the one of `engine`."""
    with _registry_lock:
        old = _trails.get(engine)
        _trails[engine] = trail
    if old is not None and old is not trail:
        old.close()
    return trail


def node_trail(engine: Engine, settings: Settings) -> AuditTrail:
    """The trail of a node or command: named after the node, with the syslog sender the
    settings ask for; installed as `engine`'s."""
    trail = AuditTrail(engine, settings.node_name, settings.audit_coalesce_seconds)
    if settings.audit_syslog:
        trail.sinks.append(
            SyslogSender(
                settings.audit_syslog,
                settings.node_name,
                ca_file=settings.audit_syslog_ca_file or settings.tls_ca_file,
                cert_file=settings.tls_cert_file,
                key_file=settings.tls_key_file,
            )
        )
    return install(engine, trail)


def trail_of(engine: Engine) -> AuditTrail:
    """The audit trail writing to `engine`'s database (made on first use)."""
    with _registry_lock:
        found = _trails.get(engine)
        if found is None:
            found = _trails[engine] = AuditTrail(engine)
        return found


def record(
    engine: Engine,
    kind: str,
    *,
    actor: Actor | None = None,
    coalesce: bool = False,
    outcome: int = SUCCESS,
    partition: str = "",
    patient_id: str = "",
    patient_name: str = "",
    study_uid: str = "",
    count: int = 0,
    detail: str = "",
) -> None:
    """Record one audit event of `kind` by `actor` (by default the current one)."""
    event = AuditEvent(
        kind,
        actor or current_actor(),
        outcome=outcome,
        partition=partition,
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study_uid,
        count=count,
        detail=detail,
    )
    trail_of(engine).record(event, coalesce=coalesce)


def flush(engine: Engine) -> None:
    """Write everything `engine`'s trail holds now, counted events too."""
    trail_of(engine).flush(everything=True)


def close(engine: Engine) -> None:
    """Write what `engine`'s trail holds and stop its writer."""
    with _registry_lock:
        found = _trails.pop(engine, None)
    if found is not None:
        found.close()


def _close_all() -> None:
    with _registry_lock:
        trails = list(_trails.values())
        _trails.clear()
    for t in trails:
        try:
            t.close()
        except Exception:
            log.exception("audit trail not written at exit")


def _forget_in_child() -> None:
    """A forked child starts with no trail: its parent writes what it holds."""
    global _trails, _registry_lock
    _trails = weakref.WeakKeyDictionary()
    _registry_lock = threading.Lock()


atexit.register(_close_all)
os.register_at_fork(after_in_child=_forget_in_child)
