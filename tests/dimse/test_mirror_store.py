"""Mirrored storage over real associations: DCMTK's storescu stores to a synchronous or an
asynchronous mirror; a failing synchronous mirror fails the store cleanly, a failing
asynchronous one never does; getscu gets the mirror's copy while the primary is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from hounsfield.alerts import list_alerts
from hounsfield.archive.commit import verify as commitment
from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import file, study
from hounsfield.dimse.server import DimseServer
from hounsfield.lifecycle.verify import verify_storage
from hounsfield.workers.runner import Worker
from hounsfield.workqueue import admin
from hounsfield.workqueue.queue import hurry
from tests.data import dataset_bytes
from tests.dcmtk import run, store_status
from tests.mirror_helpers import add_mirror, block, flip_bytes, rows_of
from tests.synth import instance, write_part10

pytestmark = pytest.mark.dcmtk


def _files(tmp_path: Path, count: int, study_uid: str | None = None) -> list[tuple[str, Path]]:
    """`count` Part-10 files of one study: (SOP Instance UID, path)."""
    study_uid = study_uid or generate_uid()
    out = []
    for n in range(count):
        ds = instance(StudyInstanceUID=study_uid, InstanceNumber=n + 1)
        path = tmp_path / "in" / f"{n}.dcm"
        path.parent.mkdir(exist_ok=True)
        write_part10(ds, path)
        out.append((str(ds.SOPInstanceUID), path))
    return out


def _storescu(port: int, paths: list[Path]) -> None:
    run("storescu", "-aec", "HOUNSFIELD", "127.0.0.1", str(port), *map(str, paths), check=True)


def _mirror_items(archive: Archive) -> list[admin.WorkItem]:
    return admin.list_items(archive.engine, kind="mirror-study")


def test_sync_mirror_holds_a_copy_before_the_store_is_acknowledged(
    archive: Archive, server: DimseServer, tmp_path: Path
) -> None:
    mirror = add_mirror(archive, tmp_path / "mirror")
    ((sop, path),) = _files(tmp_path, 1)
    assert store_status(server.port, path) == 0x0000
    rows = rows_of(archive, sop)
    primary, copy = rows[archive.settings.storage_dir.resolve()], rows[mirror]
    assert (copy.path, copy.size, copy.checksum) == (primary.path, primary.size, primary.checksum)
    assert primary.intact() and copy.intact()
    assert copy.file.read_bytes() == primary.file.read_bytes()
    assert dataset_bytes(copy.file) == dataset_bytes(path)  # stored as received
    with db.read(archive.engine) as conn:
        assert conn.scalar(select(study.c.size_bytes)) == primary.size  # counted once
    assert _mirror_items(archive) == []  # nothing left to do later


def test_failing_sync_mirror_fails_the_store_cleanly(
    archive: Archive, server: DimseServer, tmp_path: Path
) -> None:
    block(add_mirror(archive, tmp_path / "mirror"))
    ((sop, path),) = _files(tmp_path, 1)
    assert store_status(server.port, path) == 0xA700  # out of resources
    assert rows_of(archive, sop) == {}
    assert list(archive.settings.storage_dir.rglob("*.dcm")) == []  # the primary copy went
    with db.read(archive.engine) as conn:
        assert conn.scalar(select(file.c.pk)) is None
    assert any("synchronous mirror write failed" in a.message for a in list_alerts(archive.engine))


def test_async_mirror_copies_after_the_store(
    archive: Archive, server: DimseServer, tmp_path: Path
) -> None:
    mirror = add_mirror(archive, tmp_path / "mirror", "async")
    stored = _files(tmp_path, 3)
    _storescu(server.port, [p for _sop, p in stored])
    for sop, _path in stored:
        assert set(rows_of(archive, sop)) == {archive.settings.storage_dir.resolve()}
    (item,) = _mirror_items(archive)  # one item for the study, coalesced
    assert item.status == "pending"
    Worker(archive, threads=1, processes=0, kinds=["mirror-study"]).run_until_idle()
    assert admin.get_item(archive.engine, item.pk).result.startswith("mirrored 3 files")
    for sop, path in stored:
        rows = rows_of(archive, sop)
        primary, copy = rows[archive.settings.storage_dir.resolve()], rows[mirror]
        assert copy.path == primary.path and copy.intact()
        assert dataset_bytes(copy.file) == dataset_bytes(path)


def test_failing_async_mirror_never_fails_a_store(
    archive: Archive, server: DimseServer, tmp_path: Path
) -> None:
    mirror = add_mirror(archive, tmp_path / "mirror", "async")
    block(mirror)
    ((sop, path),) = _files(tmp_path, 1)
    assert store_status(server.port, path) == 0x0000
    (primary,) = rows_of(archive, sop).values()
    assert primary.intact()
    worker = Worker(archive, threads=1, processes=0, kinds=["mirror-study"])
    worker.run_until_idle()
    (item,) = _mirror_items(archive)
    assert item.status == "pending" and item.failure_count == 1  # retried after a back-off
    assert "not mirrored" in item.error
    assert set(rows_of(archive, sop)) == {archive.settings.storage_dir.resolve()}

    mirror.unlink()  # the mirror is back
    mirror.mkdir()
    with db.write(archive.engine) as conn:
        hurry(conn, item.pk)
    worker.run_until_idle()
    assert admin.get_item(archive.engine, item.pk).status == "completed"
    assert rows_of(archive, sop)[mirror].intact()


def test_retrieval_reads_the_mirror_then_verification_repairs_the_primary(
    archive: Archive, server: DimseServer, tmp_path: Path
) -> None:
    """One primary file deleted, one corrupted: getscu gets the deleted one's mirror copy,
    storage commitment vouches for the corrupted one from its mirror, and verification
    finds both and restores them from the mirror."""
    mirror = add_mirror(archive, tmp_path / "mirror")
    stored = _files(tmp_path, 2)
    _storescu(server.port, [p for _sop, p in stored])
    primary_root = archive.settings.storage_dir.resolve()
    (gone_sop, gone_path), (bad_sop, _bad_path) = stored
    gone = rows_of(archive, gone_sop)[primary_root]
    bad = rows_of(archive, bad_sop)[primary_root]
    original = {gone_sop: gone.file.read_bytes(), bad_sop: bad.file.read_bytes()}
    gone.file.unlink()
    flip_bytes(bad.file)

    got = tmp_path / "got"
    got.mkdir()
    run(
        "getscu", "-S", "-aec", "HOUNSFIELD", "-od", str(got),
        "-k", "QueryRetrieveLevel=IMAGE", "-k", f"SOPInstanceUID={gone_sop}",
        "127.0.0.1", str(server.port), check=True,
    )  # fmt: skip
    (received,) = got.iterdir()
    assert dataset_bytes(received) == dataset_bytes(gone_path)
    cuid = str(instance().SOPClassUID)
    assert commitment(archive, [(cuid, bad_sop)]).success == [(cuid, bad_sop)]

    report = verify_storage(archive)
    assert (report.checked, report.good, report.bad, report.missing) == (4, 2, 1, 1)
    assert (report.repaired, report.unrepairable) == (2, 0)
    for sop in (gone_sop, bad_sop):
        rows = rows_of(archive, sop)
        assert rows[primary_root].file.read_bytes() == original[sop]
        assert rows[primary_root].intact() and rows[mirror].intact()
        assert rows[primary_root].verified_at is not None
    alerts = [a.message for a in list_alerts(archive.engine)]
    assert sum("repaired from" in m for m in alerts) == 2
