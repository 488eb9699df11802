"""Archive copies, online retention relying on them, and write-only filesystems."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import func, select

from hounsfield.archive.context import Archive
from hounsfield.archive.query import Located, locate
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, study
from hounsfield.errors import InvalidDataset, StorageFull
from hounsfield.lifecycle.archive_copy import copy_to_tier
from hounsfield.rules.model import Rule
from hounsfield.rules.saved import save_rule
from hounsfield.scheduled.scheduler import ensure_services, run_service
from hounsfield.storage.atomic import file_checksum
from hounsfield.storage.tiers import add_filesystem, list_filesystems, set_filesystem
from hounsfield.workers.runner import Worker
from hounsfield.workqueue import admin
from tests.conftest import make_archive, make_settings
from tests.storage_helpers import store_study, store_variant


def _locate(archive: Archive, study_uid: str) -> list[Located]:
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = study_uid
    return locate(archive, ident)


def _files_on(archive: Archive, fs_pk: int) -> list[tuple[str, str]]:
    """(path, recorded checksum) of the files the index has on a filesystem."""
    with db.read(archive.engine) as conn:
        rows = conn.execute(
            select(file.c.path, file.c.checksum).where(file.c.filesystem_pk == fs_pk)
        ).all()
    return [(str(p), str(c)) for p, c in rows]


def _run_queue(archive: Archive) -> None:
    Worker(archive, threads=2, processes=0).run_until_idle()
    assert set(admin.counts(archive.engine)) == {"completed"}


def test_rule_params_for_archive_copy() -> None:
    assert Rule("a", "archive-copy", params={"tier": 2}).params == {"tier": 2}
    with pytest.raises(InvalidDataset):
        Rule("a", "archive-copy", params={"tier": 4})
    with pytest.raises(InvalidDataset):
        Rule("d", "delete", params={"tier": 2})


def test_archive_copy_then_online_retention_keeps_the_study_retrievable(
    tmp_path: Path, database_url: str
) -> None:
    archive = make_archive(make_settings(tmp_path, database_url, study_settle_seconds=0))
    try:
        add_filesystem(archive.engine, tmp_path / "tier2", tier=2, capacity_bytes=10_000_000)
        add_filesystem(
            archive.engine, tmp_path / "tier3", tier=3, capacity_bytes=10_000_000, write_only=True
        )
        save_rule(archive.engine, Rule("archive", "archive-copy", is_default=True))
        save_rule(archive.engine, Rule("online", "online-retention", is_default=True))
        stored = store_study(archive, "archive-copy", ["CT_small.dcm", "MR_small.dcm"])
        uid = stored[0].study
        tiers = {u.tier: u for u in list_filesystems(archive.engine)}
        t1, t3 = tiers[1], tiers[3]
        online = _locate(archive, uid)
        assert len(online) == 2 and all(str(o.path).startswith(t1.path) for o in online)
        originals = {o.sop_instance: o.path.read_bytes() for o in online}
        _run_queue(archive)  # process-study: the rules' outcome is stored

        ensure_services(archive)
        assert run_service(archive, "archive-copy", force=True) == (
            "queued 1 studies for archive copy"
        )
        assert run_service(archive, "archive-copy", force=True) == (
            "queued 0 studies for archive copy"  # the item is already waiting
        )
        _run_queue(archive)
        copies = _files_on(archive, t3.pk)  # the default tier: the highest writable one
        assert len(copies) == 2
        for rel, checksum in copies:
            assert file_checksum(Path(t3.path) / rel) == checksum
        assert run_service(archive, "archive-copy", force=True) == (
            "queued 0 studies for archive copy"  # copied: nothing more to do
        )
        with db.read(archive.engine) as conn:
            study_pk = int(conn.scalar(select(study.c.pk).where(study.c.study_iuid == uid)))
        assert copy_to_tier(archive, study_pk).files == 0  # idempotent
        # Both copies exist: retrieval reads the tier-1 one, not the write-only archive.
        assert [o.path for o in _locate(archive, uid)] == [o.path for o in online]

        size = sum(s.size for s in stored)
        set_filesystem(
            archive.engine, t1.path, capacity_bytes=size, low_watermark=0, high_watermark=50
        )
        planned = run_service(archive, "filesystem-watermark-check", force=True)
        assert planned is not None and "purge-study 1" in planned
        _run_queue(archive)
        assert _files_on(archive, t1.pk) == []
        assert not [p for p in Path(t1.path).rglob("*.dcm")]
        archived = _locate(archive, uid)
        assert len(archived) == 2 and all(str(a.path).startswith(t3.path) for a in archived)
        assert {a.sop_instance: a.path.read_bytes() for a in archived} == originals
    finally:
        archive.close()


def test_archive_copy_to_the_rule_tier(tmp_path: Path, database_url: str) -> None:
    archive = make_archive(make_settings(tmp_path, database_url, study_settle_seconds=0))
    try:
        add_filesystem(archive.engine, tmp_path / "tier2", tier=2, capacity_bytes=10_000_000)
        add_filesystem(archive.engine, tmp_path / "tier3", tier=3, capacity_bytes=10_000_000)
        save_rule(
            archive.engine, Rule("to-t2", "archive-copy", is_default=True, params={"tier": 2})
        )
        stored = store_variant(archive, "CT_small.dcm", 1)
        _run_queue(archive)
        ensure_services(archive)
        assert "queued 1" in (run_service(archive, "archive-copy", force=True) or "")
        _run_queue(archive)
        tiers = {u.tier: u for u in list_filesystems(archive.engine)}
        assert len(_files_on(archive, tiers[2].pk)) == 1
        assert _files_on(archive, tiers[3].pk) == []
        (located,) = _locate(archive, stored.study)
        assert str(located.path).startswith(tiers[1].path)  # the faster copy is read
    finally:
        archive.close()


def test_write_only_filesystem_never_receives_new_objects(archive: Archive, tmp_path: Path) -> None:
    add_filesystem(archive.engine, tmp_path / "wo", tier=1, write_only=True)
    set_filesystem(archive.engine, archive.settings.storage_dir, read_only=True)
    archive.filesystems.invalidate()
    with pytest.raises(StorageFull):
        store_variant(archive, "CT_small.dcm", 1)  # the write-only one is not a choice
    set_filesystem(archive.engine, archive.settings.storage_dir, read_only=False)
    archive.filesystems.invalidate()
    store_variant(archive, "CT_small.dcm", 1)
    with db.read(archive.engine) as conn:
        held = dict(
            conn.execute(
                select(filesystem.c.write_only, func.count(file.c.pk))
                .outerjoin(file, file.c.filesystem_pk == filesystem.c.pk)
                .group_by(filesystem.c.write_only)
            ).all()
        )
    assert held == {False: 1, True: 0}
    assert not list((tmp_path / "wo").rglob("*.dcm"))
