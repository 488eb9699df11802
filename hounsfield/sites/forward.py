"""Forwarding as the operator and the rules ask for it: queue forwards of studies to
destinations (by hand, or by the forward rules on receipt or once a study settled), list
their state, and retry the dead-lettered ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from hounsfield.archive.context import Archive
from hounsfield.catalog.partitions import Partition
from hounsfield.db import engine as db
from hounsfield.db.tables import forward, patient, work_item
from hounsfield.db.tables import study as study_t
from hounsfield.errors import InvalidDataset, NotFound
from hounsfield.rules.evaluate import forwards
from hounsfield.rules.model import destinations
from hounsfield.rules.saved import list_rules, study_facts
from hounsfield.sites.devices import find_device
from hounsfield.sites.forward_state import FAILED, Forward, list_forwards, open_forward, work_key
from hounsfield.sites.window import Window
from hounsfield.workqueue import wake
from hounsfield.workqueue.items import WAITING, now
from hounsfield.workqueue.kinds import FORWARD_STUDY
from hounsfield.workqueue.queue import enqueue, hurry

BY_HAND = "by hand"


@dataclass(frozen=True)
class Job:
    """What one forward-study work item sends where."""

    forward_pk: int
    partition: str
    study: str
    series: str
    destination: str
    window: str | None = None

    @classmethod
    def of(cls, payload: dict[str, object]) -> Job:
        """From a work item's payload."""
        return cls(
            int(payload["forward"]),  # type: ignore[call-overload]
            str(payload["partition"]),
            str(payload["study"]),
            str(payload.get("series") or ""),
            str(payload["destination"]),
            str(payload["window"]) if payload.get("window") else None,
        )


def queue_forward(
    conn: Connection,
    archive: Archive,
    part: Partition,
    study_uid: str,
    destination: str,
    *,
    series_uid: str = "",
    reason: str = BY_HAND,
    at: datetime | None = None,
    window: str | None = None,
) -> int:
    """Queue a forward in the caller's transaction (one waiting item per study, series and
    destination: asking again while one waits changes nothing); the forward's pk."""
    pk = open_forward(conn, part.pk, study_uid, series_uid, destination, reason)
    start = at or now()
    if window:
        start = Window.parse(window).next_start(start)
    payload = {
        "forward": pk,
        "partition": part.ae_title,
        "study": study_uid,
        "series": series_uid,
        "destination": destination,
        "window": window,
    }
    key = work_key(part.pk, study_uid, series_uid, destination)
    queued = enqueue(
        conn,
        FORWARD_STUDY.name,
        payload,
        at=start,
        coalesce_key=key,
        max_retries=archive.settings.forward_max_attempts - 1,
    )
    if queued is None and start <= now():  # one already waits (maybe for a commitment)
        waiting = conn.scalar(
            select(work_item.c.pk).where(
                work_item.c.coalesce_key == key, work_item.c.status.in_(WAITING)
            )
        )
        if waiting is not None:
            hurry(conn, int(waiting))
    return pk


def forward_studies(
    archive: Archive,
    destination: str,
    *,
    study: str | None = None,
    series: str | None = None,
    patient_id: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    partition: str | None = None,
) -> list[str]:
    """Queue forwards to `destination` of one study (or one of its series), of a patient's
    studies, or of the studies dated in a range (YYYYMMDD, inclusive); their UIDs."""
    if find_device(archive, destination) is None:
        raise NotFound(f"no device with AE title {destination!r}")
    if not (study or patient_id or date_from or date_to):
        raise InvalidDataset("name a study, a patient or a date range to forward")
    if series and not study:
        raise InvalidDataset("a series is forwarded with its study's UID")
    part = archive.resolve(partition)
    stmt = select(study_t.c.study_iuid).where(study_t.c.partition_pk == part.pk)
    if study:
        stmt = stmt.where(study_t.c.study_iuid == study)
    if patient_id:
        stmt = stmt.join(patient, patient.c.pk == study_t.c.patient_pk).where(
            patient.c.patient_id == patient_id
        )
    if date_from:
        stmt = stmt.where(study_t.c.study_date >= date_from)
    if date_to:
        stmt = stmt.where(study_t.c.study_date <= date_to)
    with db.write(archive.engine) as conn:
        order = (study_t.c.study_date, study_t.c.pk)
        uids = [str(u) for u in conn.scalars(stmt.order_by(*order))]
        for uid in uids:
            queue_forward(conn, archive, part, uid, destination, series_uid=series or "")
    wake.ring()  # committed: this node's workers start now
    if study and not uids:
        raise NotFound(f"no study {study} in partition {part.ae_title}")
    return uids


def route_study(archive: Archive, partition: str, study_uid: str, trigger: str) -> list[str]:
    """Apply the forward rules with this trigger ("receipt" or "settled") to a study: queue
    a forward to each destination of each matching rule; what was queued, as text."""
    part = archive.partition(partition)
    with db.read(archive.engine) as conn:
        study_pk = conn.scalar(
            select(study_t.c.pk).where(
                study_t.c.partition_pk == part.pk, study_t.c.study_iuid == study_uid
            )
        )
        found = study_facts(conn, int(study_pk)) if study_pk is not None else None
    if found is None:
        return []
    _part_pk, facts = found
    chosen = forwards(list_rules(archive.engine, part.pk), facts, trigger)
    queued: list[str] = []
    with db.write(archive.engine) as conn:
        for eligibility in chosen:
            window = eligibility.params.get("window")
            for dest in destinations(eligibility.params):
                queue_forward(
                    conn,
                    archive,
                    part,
                    study_uid,
                    dest,
                    reason=eligibility.rule,
                    at=max(eligibility.at, now()),
                    window=str(window) if window else None,
                )
                queued.append(f"{dest} ({eligibility.rule})")
    if queued:
        wake.ring()
    return queued


def retry_failed(
    archive: Archive, *, destination: str | None = None, pk: int | None = None
) -> list[Forward]:
    """Queue the dead-lettered forwards again (all, one destination's, or one); which."""
    failed = [
        f
        for f in list_forwards(archive.engine, destination=destination, state=FAILED, limit=100_000)
        if pk is None or f.pk == pk
    ]
    if pk is not None and not failed:
        raise NotFound(f"no failed forward #{pk}")
    with db.write(archive.engine) as conn:
        for f in failed:
            queue_forward(
                conn,
                archive,
                archive.partition(f.partition),
                f.study,
                f.destination,
                series_uid=f.series,
                reason=f.reason,
            )
            conn.execute(update(forward).where(forward.c.pk == f.pk).values(attempts=0))
    if failed:
        wake.ring()
    return failed
