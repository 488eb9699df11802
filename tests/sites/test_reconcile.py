"""Reconciliation with another Hounsfield node: exact differences, fetch, push, then none left."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import select

from hounsfield.alerts import list_alerts
from hounsfield.archive.context import Archive
from hounsfield.catalog import partitions
from hounsfield.db import engine as db
from hounsfield.db.tables import study
from hounsfield.dimse.server import DimseServer
from hounsfield.errors import InvalidDataset, NotFound
from hounsfield.sites.devices import Device, add_device
from hounsfield.sites.reconcile import reconcile
from hounsfield.sites.reconcile_peer import PeerSide
from tests.sites.reconcile_clinic import (
    Scenario,
    clinic_node,
    found,
    into,
    make_studies,
    populate,
)

FIRST = date(2024, 3, 4)


@pytest.fixture
def hq(archive: Archive, server: DimseServer) -> Archive:
    """Headquarters: the archive under test, with a partition for the clinic."""
    with db.write(archive.engine) as conn:
        partitions.add(conn, "CLINIC_A")
    archive.forget_partitions()
    return archive


@pytest.fixture
def clinic(hq: Archive, tmp_path: Path) -> Iterator[Archive]:
    """The clinic: another Hounsfield node, known to HQ as device CLINIC."""
    with clinic_node(tmp_path) as (node, node_server):
        add_device(hq, Device("CLINIC", "127.0.0.1", node_server.port))
        yield node


def _populate(hq: Archive, clinic: Archive, per_day: list[int]) -> Scenario:
    studies = make_studies(FIRST, per_day, series=2, per_series=6)
    return populate(into(clinic), into(hq, "CLINIC_A"), studies, FIRST)


def _clinic_holds(clinic: Archive, uids: set[str]) -> bool:
    with db.read(clinic.engine) as conn:
        held = {str(u) for u in conn.scalars(select(study.c.study_iuid))}
    return uids <= held


def test_finds_exactly_the_differences_fetches_pushes_and_then_finds_none(
    hq: Archive, clinic: Archive
) -> None:
    scenario = _populate(hq, clinic, [5, 5, 4, 5, 5])  # 24 studies, 288 instances
    lo, hi = scenario.first, scenario.last
    seen: list[str] = []

    first = reconcile(hq, "CLINIC_A", "CLINIC", lo, hi, progress=lambda p, d, t: seen.append(p))
    assert first.state == "complete", first.notes
    assert found(first.found) == scenario.expected
    assert (first.missing, first.extra) == (scenario.missing_objects, scenario.extra_objects)
    assert first.passes == 1 and first.differences_left == first.missing + first.extra
    # the re-dated studies were found by UID, not reported
    assert all(any(uid in note for note in first.notes) for uid in scenario.redated)
    assert len(first.days) == (hi - lo).days + 1
    assert sum(d["peer_instances"] for d in first.days) == 24 * 12 - 12  # one dated 1999
    assert "comparing studies" in seen
    assert any(
        a.category == "reconcile" and f"#{first.pk}" in a.message for a in list_alerts(hq.engine)
    )

    repaired = reconcile(hq, "CLINIC_A", "CLINIC", lo, hi, direction="both")
    assert repaired.state == "complete"
    assert (repaired.fetched, repaired.pushed) == (scenario.missing_objects, scenario.extra_objects)
    assert repaired.passes == 2 and repaired.left == []
    assert (repaired.missing_left, repaired.extra_left) == (0, 0)
    assert {d.repair for d in repaired.found} == {"fetched", "pushed"}
    assert _clinic_holds(clinic, {ds.StudyInstanceUID for ds in scenario.hq_only})

    again = reconcile(hq, "CLINIC_A", "CLINIC", lo, hi)
    assert again.found == [] and again.differences_left == 0
    assert sum(d["local_instances"] for d in again.days) == sum(
        d["peer_instances"] for d in again.days
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_fetches_by_c_move_and_splits_answers_at_the_threshold(
    hq: Archive, server: DimseServer, clinic: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = _populate(hq, clinic, [4, 4, 3, 3])
    add_device(clinic, Device("CLINIC_A", "127.0.0.1", server.port))  # the clinic knows HQ
    hq.settings.reconcile_split_at = 3  # a study query with 3 answers or more is split
    asked: list[tuple[str, str]] = []
    real_find = PeerSide.find

    def spy(self: PeerSide, query: Dataset, **kwargs: bool) -> tuple[list[Dataset], bool]:
        if query.QueryRetrieveLevel == "STUDY" and query.StudyDate:
            asked.append((str(query.StudyDate), str(query.StudyTime)))
        return real_find(self, query, **kwargs)

    monkeypatch.setattr(PeerSide, "find", spy)

    report = reconcile(
        hq, "CLINIC_A", "CLINIC", scenario.first, scenario.last, direction="fetch", method="move"
    )
    assert report.state == "complete", report.notes
    assert found(report.found) == scenario.expected
    assert report.fetched == scenario.missing_objects
    assert report.missing_left == 0 and report.extra_left == scenario.extra_objects
    assert {d.repair for d in report.found if d.side == "missing"} == {"fetched"}
    assert ("20240304-20240307", "") in asked  # the whole range, then halves, then days
    assert ("20240304-20240305", "") in asked and ("20240304", "") in asked
    assert ("20240304", "000000-115959.999999") in asked  # a day of 4, by StudyTime


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_peer_that_cannot_be_reached_ends_the_report_failed(hq: Archive) -> None:
    add_device(hq, Device("GONE", "127.0.0.1", 9))
    report = reconcile(hq, "CLINIC_A", "GONE", "20240101", "20240102")
    assert report.state == "failed" and "cannot connect" in report.error
    assert any(a.level == "error" and f"#{report.pk}" in a.message for a in list_alerts(hq.engine))
    with pytest.raises(NotFound):
        reconcile(hq, "CLINIC_A", "NOBODY", "20240101", "20240102")
    with pytest.raises(InvalidDataset):
        reconcile(hq, "CLINIC_A", "GONE", "20240102", "20240101")
    with pytest.raises(InvalidDataset):
        reconcile(hq, "CLINIC_A", "GONE", "2024-13-01", "20240101")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_peer_without_count_keys_is_counted_series_by_series_and_image_by_image(
    hq: Archive, clinic: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = _populate(hq, clinic, [4, 4, 3, 3])
    real_find = PeerSide.find
    levels: list[str] = []

    def uncounted(self: PeerSide, query: Dataset, **kwargs: bool) -> tuple[list[Dataset], bool]:
        answers, capped = real_find(self, query, **kwargs)
        levels.append(str(query.QueryRetrieveLevel))
        for answer in answers:
            for key in ("NumberOfStudyRelatedInstances", "NumberOfSeriesRelatedInstances"):
                if key in answer:
                    del answer[key]
        return answers, capped

    monkeypatch.setattr(PeerSide, "find", uncounted)
    report = reconcile(hq, "CLINIC_A", "CLINIC", scenario.first, scenario.last)
    assert report.state == "complete", report.notes
    assert found(report.found) == scenario.expected
    assert report.missing == scenario.missing_objects
    assert sum(d["peer_instances"] for d in report.days) == 14 * 12 - 12  # one dated 1999
    assert levels.count("IMAGE") >= 2 * 14 - 2  # every series of every study listed
