"""Reconciliation with an Orthanc that caps its C-FIND answers (LimitFindResults)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import httpx
import pytest
from pydicom.dataset import Dataset

from hounsfield.archive.context import Archive
from hounsfield.catalog import partitions
from hounsfield.db import engine as db
from hounsfield.dimse.server import DimseServer
from hounsfield.sites.devices import Device, add_device
from hounsfield.sites.reconcile import reconcile
from hounsfield.sites.reconcile_peer import PeerSide
from tests.orthanc import Orthanc
from tests.sites.reconcile_clinic import found, into, into_orthanc, make_studies, populate

FIRST = date(2024, 5, 6)
LIMIT = 7


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_orthanc_that_caps_its_answers_still_reconciles(
    archive: Archive, server: DimseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    capped: list[tuple[str, str]] = []
    real_find = PeerSide.find

    def spy(self: PeerSide, query: Dataset, **kwargs: bool) -> tuple[list[Dataset], bool]:
        answers, cut = real_find(self, query, **kwargs)
        if cut:
            capped.append((str(query.get("StudyDate", "")), str(query.get("StudyTime", ""))))
        return answers, cut

    monkeypatch.setattr(PeerSide, "find", spy)
    with db.write(archive.engine) as conn:
        partitions.add(conn, "CLINIC_A")
    archive.forget_partitions()
    orthanc = Orthanc(
        tmp_path / "orthanc",
        modalities={"CLINIC_A": ("127.0.0.1", server.port)},
        limit_find_results=LIMIT,
    )
    try:
        add_device(archive, Device("ORTHANC", "127.0.0.1", orthanc.port))
        # a day of 9 studies: more than Orthanc answers at once
        studies = make_studies(FIRST, [3, 9, 4, 3], series=2, per_series=6)
        scenario = populate(into_orthanc(orthanc), into(archive, "CLINIC_A"), studies, FIRST)
        lo, hi = scenario.first, scenario.last

        first = reconcile(archive, "CLINIC_A", "ORTHANC", lo, hi)
        assert first.state == "complete", first.notes
        assert found(first.found) == scenario.expected
        assert sum(d["peer_studies"] for d in first.days) == len(studies) - 1  # one dated 1999
        assert ("20240506-20240509", "") in capped  # Orthanc cut the whole range short
        assert ("20240507", "") in capped  # and the day of 9, then split by StudyTime

        repaired = reconcile(archive, "CLINIC_A", "ORTHANC", lo, hi, direction="both")
        assert repaired.state == "complete", repaired.notes
        assert repaired.fetched == scenario.missing_objects
        assert repaired.pushed == scenario.extra_objects
        assert (repaired.missing_left, repaired.extra_left) == (0, 0)
        for ds in scenario.hq_only:  # now at the clinic too
            hits = httpx.post(f"{orthanc.url}/tools/lookup", content=str(ds.SOPInstanceUID))
            assert [h["Type"] for h in hits.json()] == ["Instance"]

        again = reconcile(archive, "CLINIC_A", "ORTHANC", lo, hi)
        assert again.state == "complete" and again.found == []
    finally:
        orthanc.stop()
