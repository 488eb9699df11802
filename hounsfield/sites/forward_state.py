"""The forward table's statements: what each destination has been sent and has committed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select, update

from hounsfield.db import engine as db
from hounsfield.db.tables import forward, forward_instance, partition
from hounsfield.workqueue.items import now, utc

log = logging.getLogger(__name__)
PENDING, SENDING, SENT, COMMITTED, FAILED = "pending", "sending", "sent", "committed", "failed"
STATES = (PENDING, SENDING, SENT, COMMITTED, FAILED)
# forward_instance states: acknowledged by C-STORE / STOW, then the commitment's answer
ACKED, KEPT, REFUSED = "sent", "committed", "refused"


@dataclass(frozen=True)
class Forward:
    """The state of one study (or series) at one destination."""

    pk: int
    partition: str
    study: str
    series: str
    destination: str
    state: str
    instances: int
    sent: int
    committed: int
    refused: int
    attempts: int
    last_error: str
    reason: str
    transaction_uid: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    committed_at: datetime | None


def work_key(partition_pk: int, study: str, series: str, destination: str) -> str:
    """The coalesce key of the forward's work item."""
    return f"forward:{partition_pk}:{study}:{series}:{destination}"


def open_forward(
    conn: Connection, partition_pk: int, study: str, series: str, destination: str, reason: str
) -> int:
    """The forward row of (study or series, destination), created pending or set pending
    again (new instances may have arrived, or an operator asks again); its pk."""
    current = now()
    where = and_(
        forward.c.partition_pk == partition_pk,
        forward.c.study_iuid == study,
        forward.c.series_iuid == series,
        forward.c.destination == destination,
    )
    pk = conn.scalar(select(forward.c.pk).where(where))
    if pk is not None:
        conn.execute(
            update(forward)
            .where(forward.c.pk == pk, forward.c.state != SENDING)
            .values(state=PENDING, reason=reason, updated_at=current)
        )
        return int(pk)
    inserted = conn.execute(
        forward.insert().values(
            partition_pk=partition_pk,
            study_iuid=study,
            series_iuid=series,
            destination=destination,
            state=PENDING,
            instances=0,
            sent=0,
            committed=0,
            refused=0,
            attempts=0,
            last_error="",
            reason=reason[:64],
            created_at=current,
            updated_at=current,
        )
    ).inserted_primary_key
    return int(inserted[0])  # type: ignore[index]


def begin(engine: Engine, pk: int, instances: int) -> dict[str, str]:
    """Start an attempt: state sending; the instances already acknowledged (or committed)
    and their states, so that they are not sent again."""
    with db.write(engine) as conn:
        conn.execute(
            update(forward)
            .where(forward.c.pk == pk)
            .values(
                state=SENDING,
                instances=instances,
                attempts=forward.c.attempts + 1,
                updated_at=now(),
            )
        )
        rows = conn.execute(
            select(forward_instance.c.sop_iuid, forward_instance.c.state).where(
                forward_instance.c.forward_pk == pk
            )
        ).all()
    return {str(sop): str(state) for sop, state in rows}


def record_sent(engine: Engine, pk: int, sent: Iterable[tuple[str, str]]) -> None:
    """The destination acknowledged these (SOP Class, SOP Instance) pairs (new ones, or
    refused ones sent again); the counters move with them. A few statements per call,
    however many pairs."""
    pairs = {iuid: cuid for cuid, iuid in sent}
    if not pairs:
        return
    current = now()
    with db.write(engine) as conn:
        known: dict[str, str] = {}
        for chunk in _chunks(list(pairs), 500):
            rows = conn.execute(
                select(forward_instance.c.sop_iuid, forward_instance.c.state).where(
                    forward_instance.c.forward_pk == pk, forward_instance.c.sop_iuid.in_(chunk)
                )
            ).all()
            known.update((str(iuid), str(state)) for iuid, state in rows)
        resent = [iuid for iuid in pairs if known.get(iuid) == REFUSED]
        added = [
            {
                "forward_pk": pk,
                "sop_iuid": iuid,
                "sop_cuid": cuid,
                "state": ACKED,
                "updated_at": current,
            }
            for iuid, cuid in pairs.items()
            if iuid not in known
        ]
        for chunk in _chunks(resent, 500):
            conn.execute(
                update(forward_instance)
                .where(forward_instance.c.forward_pk == pk, forward_instance.c.sop_iuid.in_(chunk))
                .values(state=ACKED, updated_at=current)
            )
        if added:
            conn.execute(forward_instance.insert(), added)
        if added or resent:
            conn.execute(
                update(forward)
                .where(forward.c.pk == pk)
                .values(
                    sent=forward.c.sent + len(added) + len(resent),
                    refused=forward.c.refused - len(resent),
                    updated_at=current,
                )
            )


class Acks:
    """Records what the destination acknowledged, in the background, several at a time: a
    write starts once BATCH acknowledgements wait or the oldest has waited DELAY seconds,
    and takes everything acknowledged until then (one transaction for several), so that
    sending rarely waits for the database. At most LIMIT acknowledgements wait to be
    recorded (sending pauses beyond), so a crash makes at most LIMIT objects be sent again,
    besides the one in flight. `close` writes the rest and reports a failed write."""

    LIMIT = 4
    BATCH = LIMIT - 1  # one more may be acknowledged while these are written
    DELAY = 0.2

    def __init__(self, engine: Engine, pk: int) -> None:
        self.engine, self.pk = engine, pk
        self._pending: list[tuple[str, str]] = []
        self._since = 0.0  # when the oldest pending acknowledgement came
        self._writing = 0
        self._lock = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"acks-{pk}", daemon=True)
        self._thread.start()

    def add(self, pairs: list[tuple[str, str]]) -> None:
        """Record these (SOP Class, SOP Instance) pairs soon."""
        with self._lock:
            while len(self._pending) + self._writing >= self.LIMIT:
                self._lock.wait()
            if not self._pending:
                self._since = time.monotonic()
            self._pending.extend(pairs)
            if len(self._pending) == len(pairs) or len(self._pending) >= self.BATCH:
                self._lock.notify_all()  # the writer starts its clock, or writes now

    def __enter__(self) -> Acks:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.close()
            return
        try:  # record what was acknowledged before the failure, keep the failure
            self.close()
        except Exception as exc:
            log.error("forward #%d: acknowledgements not recorded: %s", self.pk, exc)

    def close(self) -> None:
        """Write what is left; raise the error of a write that failed."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _next_batch(self) -> list[tuple[str, str]]:
        """Wait for a batch worth writing (empty: closed with nothing left); call locked."""
        while not self._closed and len(self._pending) < self.BATCH:
            if not self._pending:
                self._lock.wait()
                continue
            left = self._since + self.DELAY - time.monotonic()
            if left <= 0:
                break
            self._lock.wait(left)
        batch, self._pending = self._pending, []
        return batch

    def _run(self) -> None:
        while True:
            with self._lock:
                batch = self._next_batch()
                if not batch:
                    return
                self._writing = len(batch)
                self._lock.notify_all()
            try:
                record_sent(self.engine, self.pk, batch)
            except BaseException as exc:  # reported by close(); sending goes on
                self._error = exc
            with self._lock:
                self._writing = 0
                self._lock.notify_all()


def _recount(conn: Connection, pk: int) -> None:
    counts: dict[str, int] = dict(
        conn.execute(
            select(forward_instance.c.state, func.count())
            .where(forward_instance.c.forward_pk == pk)
            .group_by(forward_instance.c.state)
        ).all()
    )
    conn.execute(
        update(forward)
        .where(forward.c.pk == pk)
        .values(
            sent=counts.get(ACKED, 0) + counts.get(KEPT, 0),
            committed=counts.get(KEPT, 0),
            refused=counts.get(REFUSED, 0),
            updated_at=now(),
        )
    )


def finished_sending(engine: Engine, pk: int, transaction_uid: str | None) -> None:
    """Every instance was acknowledged; waiting for the commitment report when
    `transaction_uid` is given."""
    current = now()
    with db.write(engine) as conn:
        conn.execute(
            update(forward)
            .where(forward.c.pk == pk)
            .values(
                state=SENT,
                transaction_uid=transaction_uid,
                last_error="",
                sent_at=current,
                updated_at=current,
            )
        )


def committed(engine: Engine, pk: int) -> None:
    """The destination committed every instance."""
    current = now()
    with db.write(engine) as conn:
        conn.execute(
            update(forward)
            .where(forward.c.pk == pk)
            .values(state=COMMITTED, last_error="", committed_at=current, updated_at=current)
        )


def failed_attempt(engine: Engine, pk: int, error: str, *, final: bool) -> None:
    """An attempt failed: pending a retry, or failed (dead-lettered) when `final`."""
    with db.write(engine) as conn:
        conn.execute(
            update(forward)
            .where(forward.c.pk == pk)
            .values(state=FAILED if final else PENDING, last_error=error[:4000], updated_at=now())
        )


@dataclass(frozen=True)
class Report:
    """What a commitment report changed: the forward and the instances now to send again."""

    forward_pk: int
    key: str
    complete: bool
    refused: int


def commitment_report(
    engine: Engine, transaction_uid: str, kept: Iterable[str], refused: Iterable[str]
) -> Report | None:
    """Record a storage commitment report for a forward (None: not one of ours). Refused
    instances are sent again by the forward's next attempt."""
    current = now()
    with db.write(engine) as conn:
        row = conn.execute(
            select(
                forward.c.pk,
                forward.c.partition_pk,
                forward.c.study_iuid,
                forward.c.series_iuid,
                forward.c.destination,
            ).where(forward.c.transaction_uid == transaction_uid)
        ).first()
        if row is None:
            return None
        pk = int(row[0])
        for state, uids in ((KEPT, list(kept)), (REFUSED, list(refused))):
            for chunk in _chunks(uids, 500):
                conn.execute(
                    update(forward_instance)
                    .where(
                        forward_instance.c.forward_pk == pk,
                        forward_instance.c.sop_iuid.in_(chunk),
                    )
                    .values(state=state, updated_at=current)
                )
        _recount(conn, pk)
        counts = conn.execute(
            select(
                forward.c.sent, forward.c.committed, forward.c.refused, forward.c.instances
            ).where(forward.c.pk == pk)
        ).one()
        sent, done, bad, total = (int(v) for v in counts)
        complete = bad == 0 and done >= total and done == sent
        if complete:
            conn.execute(
                update(forward)
                .where(forward.c.pk == pk)
                .values(state=COMMITTED, committed_at=current, last_error="")
            )
        elif bad:
            conn.execute(
                update(forward)
                .where(forward.c.pk == pk)
                .values(state=PENDING, last_error=f"{bad} instances not committed: sending again")
            )
    return Report(pk, work_key(int(row[1]), row[2], row[3], row[4]), complete, bad)


def _chunks(values: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def uncommitted(engine: Engine, pk: int) -> list[tuple[str, str]]:
    """The (SOP Class, SOP Instance) pairs acknowledged but not committed yet."""
    with db.read(engine) as conn:
        rows = conn.execute(
            select(forward_instance.c.sop_cuid, forward_instance.c.sop_iuid).where(
                forward_instance.c.forward_pk == pk, forward_instance.c.state == ACKED
            )
        ).all()
    return [(str(c), str(i)) for c, i in rows]


def list_forwards(
    engine: Engine,
    *,
    destination: str | None = None,
    state: str | None = None,
    study: str | None = None,
    limit: int = 200,
) -> list[Forward]:
    """Forwards, most recently changed first."""
    stmt = (
        select(forward, partition.c.ae_title)
        .join(partition, partition.c.pk == forward.c.partition_pk)
        .order_by(forward.c.updated_at.desc(), forward.c.pk.desc())
        .limit(limit)
    )
    if destination:
        stmt = stmt.where(forward.c.destination == destination)
    if state:
        stmt = stmt.where(forward.c.state == state)
    if study:
        stmt = stmt.where(forward.c.study_iuid == study)
    with db.read(engine) as conn:
        rows = conn.execute(stmt).mappings().all()
    return [_forward(r) for r in rows]


def get_forward(engine: Engine, pk: int) -> Forward | None:
    """One forward by pk."""
    with db.read(engine) as conn:
        row = (
            conn.execute(
                select(forward, partition.c.ae_title)
                .join(partition, partition.c.pk == forward.c.partition_pk)
                .where(forward.c.pk == pk)
            )
            .mappings()
            .first()
        )
    return _forward(row) if row else None


def _forward(row: Any) -> Forward:
    return Forward(
        pk=int(row["pk"]),
        partition=str(row["ae_title"]),
        study=str(row["study_iuid"]),
        series=str(row["series_iuid"]),
        destination=str(row["destination"]),
        state=str(row["state"]),
        instances=int(row["instances"]),
        sent=int(row["sent"]),
        committed=int(row["committed"]),
        refused=int(row["refused"]),
        attempts=int(row["attempts"]),
        last_error=str(row["last_error"]),
        reason=str(row["reason"]),
        transaction_uid=row["transaction_uid"],
        created_at=utc(row["created_at"]) or now(),
        updated_at=utc(row["updated_at"]) or now(),
        sent_at=utc(row["sent_at"]),
        committed_at=utc(row["committed_at"]),
    )
