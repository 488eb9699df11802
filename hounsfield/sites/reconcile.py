"""Reconcile a partition with a peer: compare, repair, compare again, keep the report, alert."""

from __future__ import annotations

import logging
from datetime import date

from hounsfield.alerts import raise_alert
from hounsfield.archive.context import Archive
from hounsfield.catalog.partitions import Partition
from hounsfield.errors import ArchiveError, InvalidDataset, NotFound
from hounsfield.sites.devices import Device, find_device
from hounsfield.sites.peers import peer_of
from hounsfield.sites.reconcile_compare import compare
from hounsfield.sites.reconcile_fetch import METHODS, fetch
from hounsfield.sites.reconcile_local import LocalSide
from hounsfield.sites.reconcile_model import (
    DEPTHS,
    DIRECTIONS,
    EXTRA,
    MISSING,
    Comparison,
    Difference,
    Progress,
    dicom_date,
    parse_day,
    quiet,
)
from hounsfield.sites.reconcile_peer import PeerSide
from hounsfield.sites.reconcile_push import push
from hounsfield.sites.reconcile_reports import (
    INCOMPLETE,
    Report,
    begin_report,
    fail_report,
    finish_report,
    get_report,
)

log = logging.getLogger(__name__)
BY_HAND = "by hand"


def reconcile(
    archive: Archive,
    partition: str,
    peer: str,
    date_from: str | date,
    date_to: str | date,
    *,
    direction: str = "none",
    method: str = "auto",
    depth: str = "counts",
    reason: str = BY_HAND,
    progress: Progress = quiet,
) -> Report:
    """Compare the partition's studies dated `date_from`..`date_to` with the peer's, repair
    (`direction`: none, fetch, push or both; fetching by C-GET or C-MOVE, `method` auto, get
    or move) and compare again (`depth`: counts, drilling down where they differ, or every
    instance by UID); the stored report, with an alert for what is left. A peer
    that cannot be reached ends the report failed (with an alert); a bad request raises
    InvalidDataset or NotFound. The CLI, the admin API and the scheduled service call this."""
    part, device, lo, hi = checked(
        archive, partition, peer, date_from, date_to, direction, method, depth
    )
    engine, scope = archive.engine, f"{part.ae_title}/{device.ae_title}"
    pk = begin_report(engine, part.ae_title, device.ae_title, lo, hi, direction, reason)
    try:
        first, repaired, last = _passes(
            archive, part, device, lo, hi, direction, method, depth == "instances", progress
        )
    except Exception as exc:
        message = exc.message if isinstance(exc, ArchiveError) else f"{type(exc).__name__}: {exc}"
        fail_report(engine, pk, message)
        raise_alert(engine, "error", "reconcile", scope, f"reconciliation #{pk} failed: {message}")
        if not isinstance(exc, ArchiveError):
            raise
        return get_report(engine, pk)
    finish_report(engine, pk, first, repaired, last)
    report = get_report(engine, pk)
    _alert(archive, report, scope)
    return report


def checked(
    archive: Archive,
    partition: str,
    peer: str,
    date_from: str | date,
    date_to: str | date,
    direction: str = "none",
    method: str = "auto",
    depth: str = "counts",
) -> tuple[Partition, Device, date, date]:
    """The partition, the peer device and the date range of a request, or InvalidDataset /
    NotFound saying what is wrong with it."""
    if direction not in DIRECTIONS:
        raise InvalidDataset(f"direction is one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if method not in METHODS:
        raise InvalidDataset(f"method is one of {', '.join(METHODS)}, not {method!r}")
    if depth not in DEPTHS:
        raise InvalidDataset(f"depth is one of {', '.join(DEPTHS)}, not {depth!r}")
    part = archive.partition(partition)
    if part.virtual:
        raise InvalidDataset(f"{part.ae_title} is a virtual partition: it holds nothing")
    device = find_device(archive, peer.strip())
    if device is None:
        raise NotFound(f"no device with AE title {peer!r}")
    if device.protocol != "dimse":
        raise InvalidDataset(f"{device.ae_title} is not a DIMSE device: it cannot be queried")
    lo, hi = parse_day(date_from), parse_day(date_to)
    if lo > hi:
        raise InvalidDataset(f"the range ends ({dicom_date(hi)}) before it starts")
    return part, device, lo, hi


def _passes(
    archive: Archive,
    part: Partition,
    device: Device,
    lo: date,
    hi: date,
    direction: str,
    method: str,
    every_instance: bool,
    progress: Progress,
) -> tuple[Comparison, list[Difference], Comparison]:
    """The first comparison, the repaired differences, and the comparison after them (the
    first again when nothing was repaired)."""
    local = LocalSide(archive, part)
    with PeerSide(peer_of(device), archive.settings, part.ae_title) as theirs:
        first = compare(local, theirs, lo, hi, progress, every_instance=every_instance)
        theirs.close()  # idle while repairing: opened again when needed
        missing = [d for d in first.differences if d.side == MISSING]
        extra = [d for d in first.differences if d.side == EXTRA]
        repaired: list[Difference] = []
        if direction in ("fetch", "both") and missing:
            repaired += fetch(
                archive, part, device, theirs, missing, method=method, progress=progress
            )
        if direction in ("push", "both") and extra:
            repaired += push(archive, part, device, extra, progress=progress)
        if not repaired:
            return first, repaired, first
        progress("comparing again", 0, None)
        again = compare(local, theirs, lo, hi, progress, every_instance=every_instance)
        return first, repaired, again


def _alert(archive: Archive, report: Report, scope: str) -> None:
    """An alert for differences left (after the repair, if any) or a partial comparison."""
    span = f"{report.date_from}-{report.date_to}"
    if report.differences_left:
        after = " after the repair" if report.passes > 1 else ""
        raise_alert(
            archive.engine,
            "warning",
            "reconcile",
            scope,
            f"reconciliation #{report.pk} ({span}){after}: {report.missing_left} objects "
            f"missing here, {report.extra_left} held here only",
        )
    elif report.state == INCOMPLETE:
        raise_alert(
            archive.engine,
            "warning",
            "reconcile",
            scope,
            f"reconciliation #{report.pk} ({span}) could not compare everything: "
            + "; ".join(report.notes[-3:]),
        )
    log.info(
        "reconciliation #%d of %s (%s): %s, %d missing, %d extra, %d left",
        report.pk,
        scope,
        span,
        report.state,
        report.missing,
        report.extra,
        report.differences_left,
    )
