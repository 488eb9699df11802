"""Equal counts can hide a difference: an image corrected at the clinic under a new UID, the
old one still at headquarters. Counts see nothing; `depth="instances"` compares every series
instance by instance, finds both, fetches the new one, and a scheduled job can ask for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from hounsfield.archive.context import Archive
from hounsfield.catalog import partitions
from hounsfield.db import engine as db
from hounsfield.dimse.server import DimseServer
from hounsfield.errors import InvalidDataset
from hounsfield.sites.devices import Device, add_device
from hounsfield.sites.reconcile import reconcile
from hounsfield.sites.reconcile_model import EXTRA, IMAGE, MISSING
from hounsfield.sites.reconcile_queue import queue_reconcile
from hounsfield.sites.reconcile_schedule import add_job, list_jobs
from tests.sites.reconcile_clinic import clinic_node, found
from tests.synth import instance, put

DAY = "20240304"


@pytest.fixture
def clinic(archive: Archive, server: DimseServer, tmp_path: Path) -> Iterator[Archive]:
    with db.write(archive.engine) as conn:
        partitions.add(conn, "CLINIC_A")
    archive.forget_partitions()
    with clinic_node(tmp_path) as (node, node_server):
        add_device(archive, Device("CLINIC", "127.0.0.1", node_server.port))
        yield node


def test_instances_depth_finds_what_equal_counts_hide(archive: Archive, clinic: Archive) -> None:
    study, series = generate_uid(), generate_uid()

    def image(n: int) -> object:
        return instance(
            StudyInstanceUID=study, SeriesInstanceUID=series, StudyDate=DAY, InstanceNumber=n
        )

    kept, old, corrected = image(1), image(2), image(2)
    for ds in (kept, corrected):
        put(clinic, ds)
    for ds in (kept, old):
        put(archive, ds, partition="CLINIC_A")

    counted = reconcile(archive, "CLINIC_A", "CLINIC", DAY, DAY)
    assert counted.state == "complete" and counted.found == []  # 2 and 2: nothing seen

    deep = reconcile(archive, "CLINIC_A", "CLINIC", DAY, DAY, depth="instances")
    assert found(deep.found) == {
        (MISSING, IMAGE, study, series, str(corrected.SOPInstanceUID)),  # type: ignore[attr-defined]
        (EXTRA, IMAGE, study, series, str(old.SOPInstanceUID)),  # type: ignore[attr-defined]
    }
    assert any("instance by instance" in note for note in deep.notes)

    repaired = reconcile(
        archive, "CLINIC_A", "CLINIC", DAY, DAY, direction="fetch", depth="instances"
    )
    assert repaired.fetched == 1
    assert found(repaired.left) == {(EXTRA, IMAGE, study, series, str(old.SOPInstanceUID))}  # type: ignore[attr-defined]


def test_the_depth_is_checked_and_kept_with_queued_and_scheduled_runs(
    archive: Archive, clinic: Archive
) -> None:
    with pytest.raises(InvalidDataset, match="depth"):
        reconcile(archive, "CLINIC_A", "CLINIC", DAY, DAY, depth="everything")
    assert queue_reconcile(archive, "CLINIC_A", "CLINIC", DAY, DAY, depth="instances")
    assert queue_reconcile(archive, "CLINIC_A", "CLINIC", DAY, DAY)  # not the same request
    add_job(archive, "deep", "CLINIC_A", "CLINIC", depth="instances")
    add_job(archive, "counts", "CLINIC_A", "CLINIC")
    assert {j.name: j.depth for j in list_jobs(archive.engine)} == {
        "deep": "instances",
        "counts": "counts",
    }
    with pytest.raises(InvalidDataset, match="depth"):
        add_job(archive, "bad", "CLINIC_A", "CLINIC", depth="everything")
