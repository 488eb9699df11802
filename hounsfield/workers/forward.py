"""Forwarding processors: route a study still arriving by the receipt rules, and send one
study (or series) to one destination until it has every instance (and, when the device asks
for it, has committed every one)."""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from hounsfield.alerts import raise_alert
from hounsfield.archive.query import Located, locate
from hounsfield.audit.events import MINOR_FAILURE, SERIOUS_FAILURE, SUCCESS, Actor
from hounsfield.audit.trail import record
from hounsfield.errors import PeerError
from hounsfield.sites import forward_state as state
from hounsfield.sites import send_dimse, send_stow
from hounsfield.sites.commitment import report_handler
from hounsfield.sites.devices import Device, find_device
from hounsfield.sites.forward import Job, route_study
from hounsfield.sites.links import rate_cap
from hounsfield.sites.window import Window
from hounsfield.workers.registry import register
from hounsfield.workqueue.items import Done, Failed, Later, Status, WorkItem, now
from hounsfield.workqueue.kinds import FORWARD_STUDY, ROUTE_STUDY

if TYPE_CHECKING:
    from hounsfield.archive.context import Archive

log = logging.getLogger(__name__)
SAME_ASSOCIATION_WAIT = 2.0  # seconds to wait for the commitment report on the link
NEXT_IN_LINE_WAIT = 10.0  # seconds the first forward refused a slot waits for one in its thread


@register(ROUTE_STUDY)
def route(archive: Archive, item: WorkItem) -> Done:
    """Queue the forwards that the receipt-triggered forward rules ask for."""
    queued = route_study(archive, item.payload["partition"], item.payload["study"], "receipt")
    return Done(f"queued to {', '.join(queued)}" if queued else "no forward rule matched")


class _Slots:
    """Associations in use per destination in this process, up to the device's number. One
    forward per destination may wait in its thread for the next free slot (and the link the
    previous study leaves in the pool), so that back-to-back studies follow without a gap."""

    def __init__(self) -> None:
        self._used: dict[str, int] = {}
        self._next: set[str] = set()  # destinations with a forward waiting in its thread
        self._cond = threading.Condition()

    def take(self, device: Device, wanted: int, wait: float = 0.0) -> int:
        """How many of the `wanted` links this forward may open now, waiting up to `wait`
        seconds when it is first in line (0: come back later)."""
        ae = device.ae_title
        with self._cond:
            free = self._free(device, wanted)
            if free <= 0 and wait > 0 and ae not in self._next:
                self._next.add(ae)
                try:
                    deadline = time.monotonic() + wait
                    while free <= 0 and (left := deadline - time.monotonic()) > 0:
                        self._cond.wait(left)
                        free = self._free(device, wanted)
                finally:
                    self._next.discard(ae)
            if free <= 0:
                return 0
            self._used[ae] = self._used.get(ae, 0) + free
            return free

    def _free(self, device: Device, wanted: int) -> int:
        return min(wanted, device.associations - self._used.get(device.ae_title, 0))

    def give(self, device: Device, count: int) -> None:
        """Give `count` links back (to the forward waiting for one, if any)."""
        with self._cond:
            self._used[device.ae_title] = max(0, self._used.get(device.ae_title, 0) - count)
            self._cond.notify_all()


SLOTS = _Slots()


@register(FORWARD_STUDY)
def forward_study(archive: Archive, item: WorkItem) -> Done | Later:
    """Send what the destination does not have yet, then wait for its commitment."""
    job = Job.of(item.payload)
    device = find_device(archive, job.destination)
    if device is None:
        why = f"destination {job.destination} is not a known device"
        state.failed_attempt(archive.engine, job.forward_pk, why, final=True)
        raise_alert(archive.engine, "error", "forward", job.destination, why)
        raise Failed(why, final=True)
    if job.window and not Window.parse(job.window).contains(now()):
        opens = Window.parse(job.window).next_start(now())
        return Later(opens, f"waiting for the window {job.window}")
    objects = _objects(archive, job)
    if not objects:
        state.failed_attempt(archive.engine, job.forward_pk, "nothing stored", final=True)
        return Done("nothing stored to forward")
    wanted = max(1, min(device.associations, len(objects) // 2))
    links = SLOTS.take(device, wanted, NEXT_IN_LINE_WAIT)
    if not links:
        return Later(now() + timedelta(seconds=0.25), "every association to the device is busy")
    try:
        return _forward(archive, item, job, device, objects, links)
    except Failed:
        raise
    except PeerError as exc:
        raise _failure(archive, item, job, str(exc)) from exc
    except Exception as exc:  # recorded on the forward too, then retried like the rest
        raise _failure(archive, item, job, f"{type(exc).__name__}: {exc}") from exc
    finally:
        SLOTS.give(device, links)


def _forward(
    archive: Archive,
    item: WorkItem,
    job: Job,
    device: Device,
    objects: list[Located],
    links: int,
) -> Done | Later:
    engine, s = archive.engine, archive.settings
    before = state.get_forward(engine, job.forward_pk)
    if before is not None and before.state == state.SENT and device.commitment:
        # Back after waiting for a commitment report that did not come: ask again, counted
        # as a failure (a peer that never reports ends dead-lettered).
        raise _failure(archive, item, job, "no storage commitment report received")
    done = state.begin(engine, job.forward_pk, len(objects))
    todo = [o for o in objects if done.get(o.sop_instance) not in (state.ACKED, state.KEPT)]
    cap = rate_cap(device.ae_title, device.bandwidth_kbps)

    with state.Acks(engine, job.forward_pk) as acks:  # recorded while the next one goes
        if device.protocol == "dicomweb":
            send_stow.send(s, device, todo, acks.add, cap=cap, links=links)
        else:
            send_dimse.send(archive, device, job.partition, todo, acks.add, cap=cap, links=links)
    summary = f"sent {len(todo)} of {len(objects)} instances to {device.ae_title}"
    _audit(archive, job, device, len(todo), SUCCESS, summary)
    if not device.commitment:
        state.finished_sending(engine, job.forward_pk, None)
        return Done(summary)
    refs = state.uncommitted(engine, job.forward_pk)
    if not refs:
        state.committed(engine, job.forward_pk)
        return Done(f"{summary}; every instance committed")
    transaction = str(generate_uid())
    state.finished_sending(engine, job.forward_pk, transaction)  # before any report can come
    send_dimse.request_commitment(
        archive,
        device,
        job.partition,
        transaction,
        refs,
        report_handler(archive),
        min(SAME_ASSOCIATION_WAIT, s.forward_commitment_wait_seconds),
    )
    after = state.get_forward(engine, job.forward_pk)
    if after is not None and after.state == state.COMMITTED:
        return Done(f"{summary}; every instance committed")
    if after is not None and after.state == state.PENDING:
        return Later(now(), f"{after.refused} instances not committed: sending again")
    wait = timedelta(seconds=s.forward_commitment_wait_seconds)
    return Later(now() + wait, f"{summary}; waiting for commitment {transaction}", Status.IDLE)


def _audit(
    archive: Archive, job: Job, device: Device, count: int, outcome: int, detail: str
) -> None:
    """Record an export to `device` (the node sends, the device receives)."""
    protocol = "DICOMweb" if device.protocol == "dicomweb" else "DICOM"
    actor = Actor(
        "system", protocol, host=device.host, ae_title=job.partition, called=device.ae_title
    )
    record(
        archive.engine,
        "export",
        actor=actor,
        outcome=outcome,
        partition=job.partition,
        study_uid=job.study,
        count=count,
        detail=detail,
    )


def _objects(archive: Archive, job: Job) -> list[Located]:
    """The stored objects of the study or series, in series and arrival order."""
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES" if job.series else "STUDY"
    query.StudyInstanceUID = job.study
    if job.series:
        query.SeriesInstanceUID = job.series
    return locate(archive, query, partition=job.partition)


def _failure(archive: Archive, item: WorkItem, job: Job, error: str) -> Failed:
    """The failure to raise: retried after an exponential back-off with jitter, or
    dead-lettered after the node's attempt limit or age limit."""
    s = archive.settings
    failures = item.failure_count + 1
    age = now() - (item.created_at or now())
    final = failures >= s.forward_max_attempts or age > timedelta(hours=s.forward_max_age_hours)
    delay = min(s.forward_retry_seconds * 2 ** (failures - 1), s.forward_retry_max_seconds)
    delay *= random.uniform(0.8, 1.2)
    state.failed_attempt(archive.engine, job.forward_pk, error, final=final)
    device = find_device(archive, job.destination)
    if device is not None:
        outcome = SERIOUS_FAILURE if final else MINOR_FAILURE
        _audit(archive, job, device, 0, outcome, error)
    if final:
        log.error("forward of %s to %s dead-lettered: %s", job.study, job.destination, error)
    return Failed(error, retry_in=delay, final=final)


def describe(payload: dict[str, Any]) -> str:
    """A forward item in a few words (for logs and lists)."""
    job = Job.of(payload)
    target = f"series {job.series}" if job.series else f"study {job.study}"
    return f"{target} of {job.partition} to {job.destination}"
