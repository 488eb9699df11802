"""One pass of a reconciliation: per-day counts, then drilling down only where counts differ."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date

from hounsfield.sites.reconcile_local import LocalSide
from hounsfield.sites.reconcile_model import (
    EXTRA,
    IMAGE,
    MISSING,
    SERIES,
    STUDY,
    Comparison,
    Day,
    Difference,
    Progress,
    SeriesCount,
    StudyCount,
    days_of,
    dicom_date,
    quiet,
)
from hounsfield.sites.reconcile_peer import PeerSide


def compare(
    local: LocalSide,
    peer: PeerSide,
    lo: date,
    hi: date,
    progress: Progress = quiet,
    *,
    every_instance: bool = False,
) -> Comparison:
    """Compare the studies dated from `lo` to `hi` on both sides: per-day counts, then
    study → series → instance only where counts differ (with `every_instance`, every series
    held on both sides is compared instance by instance). A study found on one side only is
    looked up on the other by its UID alone before it is called missing (a study's date may
    differ between archives; such studies are noted)."""
    notes: list[str] = []
    if every_instance:
        notes.append("every series held on both sides compared instance by instance")
    incomplete: list[str] = []
    peer.invalid = 0
    progress("listing the peer's studies", 0, None)
    theirs = {s.uid: _counted(peer, s, incomplete) for s in peer.studies(lo, hi, incomplete)}
    mine = {s.uid: s for s in local.studies(lo, hi)}
    days = _days(lo, hi, mine.values(), theirs.values())
    differences: list[Difference] = []
    held = {**theirs, **mine}
    uids = sorted(held, key=lambda uid: (held[uid].date, uid))  # by day, as the table
    for done, uid in enumerate(uids):
        progress("comparing studies", done, len(uids))
        here, there = mine.get(uid), theirs.get(uid)
        if here is None:
            here = local.study(uid)
            if here is not None:
                notes.append(f"study {uid} is dated {here.date or '-'} here, {_date(there)} there")
        if there is None:
            found = peer.study(uid)
            there = _counted(peer, found, incomplete) if found is not None else None
            if there is not None:
                notes.append(f"study {uid} is dated {_date(here)} here, {there.date or '-'} there")
        differences += _study(local, peer, here, there, incomplete, every_instance)
    progress("comparing studies", len(uids), len(uids))
    if peer.invalid:
        incomplete.append(f"the peer answered {peer.invalid} invalid UIDs, left out")
    return Comparison(days, differences, notes, incomplete)


def _counted(peer: PeerSide, found: StudyCount, incomplete: list[str]) -> StudyCount:
    """The peer's study with its instance count, counted when the peer did not say."""
    if found.instances is not None:
        return found
    return replace(found, instances=peer.count(found.uid, incomplete))


def _n(found: StudyCount | SeriesCount) -> int:
    return found.instances or 0


def _date(found: StudyCount | None) -> str:
    return (found.date or "-") if found is not None else "-"


def _days(
    lo: date, hi: date, mine: Iterable[StudyCount], theirs: Iterable[StudyCount]
) -> list[Day]:
    """Each day's studies and instances, on each side by its own dates."""
    table = {dicom_date(d): Day(dicom_date(d)) for d in days_of(lo, hi)}
    for found in mine:
        if found.date in table:
            table[found.date].local_studies += 1
            table[found.date].local_instances += found.instances or 0
    for found in theirs:
        if found.date in table:
            table[found.date].peer_studies += 1
            table[found.date].peer_instances += found.instances or 0
    return list(table.values())


def _study(
    local: LocalSide,
    peer: PeerSide,
    here: StudyCount | None,
    there: StudyCount | None,
    incomplete: list[str],
    every_instance: bool,
) -> list[Difference]:
    if here is None and there is not None:
        return [Difference(MISSING, STUDY, there.uid, date=there.date, instances=_n(there))]
    if there is None and here is not None:
        return [Difference(EXTRA, STUDY, here.uid, date=here.date, instances=_n(here))]
    if here is None or there is None:
        return []
    if here.instances == there.instances and not every_instance:
        return []
    return drill(local, peer, here, there, incomplete, every_instance)


def drill(
    local: LocalSide,
    peer: PeerSide,
    here: StudyCount,
    there: StudyCount,
    incomplete: list[str],
    every_instance: bool = False,
) -> list[Difference]:
    """The series and instances of one study that differ: of the series on both sides, those
    whose counts differ (every one with `every_instance`) instance by instance."""
    uid, day = here.uid, there.date or here.date
    mine = {s.uid: s for s in local.series(uid)}
    listed, capped = peer.series(uid)
    if capped:
        incomplete.append(f"study {uid}: the peer capped its series list")
    theirs = {s.uid: s for s in listed}
    out: list[Difference] = []
    for series_uid in sorted(set(mine) | set(theirs)):
        own, their = mine.get(series_uid), theirs.get(series_uid)
        if own is None and their is not None:
            count = their.instances
            if count is None:
                count = len(peer.instances(uid, series_uid)[0])
            out.append(Difference(MISSING, SERIES, uid, series_uid, date=day, instances=count))
        elif their is None and own is not None:
            if not capped:
                out.append(Difference(EXTRA, SERIES, uid, series_uid, date=day, instances=_n(own)))
        elif (
            own is not None
            and their is not None
            and (every_instance or own.instances != their.instances)
        ):
            out += _instances(local, peer, uid, series_uid, day, incomplete)
    return out


def _instances(
    local: LocalSide, peer: PeerSide, uid: str, series_uid: str, day: str, incomplete: list[str]
) -> list[Difference]:
    mine = {i.uid: i for i in local.instances(uid, series_uid)}
    listed, capped = peer.instances(uid, series_uid)
    if capped:
        incomplete.append(f"series {series_uid}: the peer capped its instance list")
    theirs = {i.uid: i for i in listed}
    out = [
        Difference(MISSING, IMAGE, uid, series_uid, sop, theirs[sop].sop_class, day)
        for sop in sorted(set(theirs) - set(mine))
    ]
    if not capped:
        out += [
            Difference(EXTRA, IMAGE, uid, series_uid, sop, mine[sop].sop_class, day)
            for sop in sorted(set(mine) - set(theirs))
        ]
    return out
