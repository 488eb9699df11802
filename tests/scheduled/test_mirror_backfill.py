"""The mirror-backfill service queues the mirroring of what a mirror lacks: objects stored
before it was added, or while it was disabled; the mirror-study items then copy them."""

from __future__ import annotations

from pathlib import Path

from pydicom.uid import generate_uid

from hounsfield.archive.context import Archive
from hounsfield.scheduled.scheduler import ensure_services, run_service
from hounsfield.storage.tiers import set_filesystem
from hounsfield.workers.runner import Worker
from tests.mirror_helpers import add_mirror, rows_of
from tests.synth import instance, put


def _study(archive: Archive, count: int) -> list[str]:
    uid, series = generate_uid(), generate_uid()
    sops = []
    for n in range(count):
        ds = instance(StudyInstanceUID=uid, SeriesInstanceUID=series, InstanceNumber=n + 1)
        put(archive, ds)
        sops.append(str(ds.SOPInstanceUID))
    return sops


def _backfill(archive: Archive) -> str | None:
    return run_service(archive, "mirror-backfill", force=True)


def _drain(archive: Archive) -> None:
    worker = Worker(archive, threads=1, processes=0)
    while worker.run_one() is not None:
        pass


def _mirrored(archive: Archive, sop: str, mirror: Path) -> bool:
    rows = rows_of(archive, sop)
    return mirror in rows and rows[mirror].intact()


def test_what_was_stored_before_the_mirror_is_copied(archive: Archive, tmp_path: Path) -> None:
    before = _study(archive, 2) + _study(archive, 1)
    mirror = add_mirror(archive, tmp_path / "mirror")  # an empty filesystem: allowed
    ensure_services(archive)
    assert _backfill(archive) == "studies queued for their mirror: 2"
    assert _backfill(archive) == "studies queued for their mirror: 0"  # already waiting
    _drain(archive)
    assert all(_mirrored(archive, sop, mirror) for sop in before)
    assert _backfill(archive) == "studies queued for their mirror: 0"  # nothing lacks a copy


def test_what_a_disabled_mirror_missed_is_copied_once_it_is_back(
    archive: Archive, tmp_path: Path
) -> None:
    mirror = add_mirror(archive, tmp_path / "mirror")
    ensure_services(archive)
    set_filesystem(archive.engine, mirror, enabled=False)
    archive.filesystems.invalidate()
    (missed,) = _study(archive, 1)  # a disabled mirror takes no copy
    assert not _mirrored(archive, missed, mirror)
    assert _backfill(archive) == "studies queued for their mirror: 0"  # it takes none now either
    set_filesystem(archive.engine, mirror, enabled=True)
    archive.filesystems.invalidate()
    assert _backfill(archive) == "studies queued for their mirror: 1"
    _drain(archive)
    assert _mirrored(archive, missed, mirror)
