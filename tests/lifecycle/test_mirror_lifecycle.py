"""Mirrors follow their filesystem: compression, migration, purge, archive copies, deletion
and overwriting keep the primary and the mirror copy consistent; the watermark check leaves
mirrors alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import JPEG2000, JPEG2000Lossless
from sqlalchemy import func, select

from hounsfield.archive.context import Archive
from hounsfield.archive.delete import remove
from hounsfield.archive.store import Outcome
from hounsfield.db import engine as db
from hounsfield.db.tables import file, study, work_item
from hounsfield.errors import InvalidDataset
from hounsfield.lifecycle.archive_copy import copy_to_tier
from hounsfield.lifecycle.compress import compress_study
from hounsfield.lifecycle.migrate import migrate_study, purge_study
from hounsfield.scheduled.scheduler import ensure_services, run_service
from hounsfield.storage.tiers import Usage, add_filesystem, list_filesystems, set_filesystem
from hounsfield.workers.runner import Worker
from tests.conftest import make_archive, make_settings
from tests.mirror_helpers import add_mirror, rows_of
from tests.storage_helpers import store_study
from tests.synth import instance, put

NAMES = ["CT_small.dcm", "MR_small.dcm"]


def _study_pk(archive: Archive, uid: str) -> int:
    with db.read(archive.engine) as conn:
        return int(conn.scalar(select(study.c.pk).where(study.c.study_iuid == uid)))  # type: ignore[arg-type]


def _fs(archive: Archive, path: Path) -> Usage:
    return next(u for u in list_filesystems(archive.engine) if u.path == str(path.resolve()))


def _dcm(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*.dcm")) if root.is_dir() else []


def _assert_mirrored(archive: Archive, sop: str, primary: Path, mirror: Path) -> None:
    rows = rows_of(archive, sop)
    assert set(rows) == {primary.resolve(), mirror.resolve()}
    p, m = rows[primary.resolve()], rows[mirror.resolve()]
    assert (p.path, p.size, p.checksum, p.transfer_syntax) == (
        m.path,
        m.size,
        m.checksum,
        m.transfer_syntax,
    )
    assert p.intact() and m.intact()


def test_compression_writes_the_new_file_to_both_copies(archive: Archive, tmp_path: Path) -> None:
    primary = archive.settings.storage_dir
    mirror = add_mirror(archive, tmp_path / "mirror")
    stored = store_study(archive, "compress-mirrored", NAMES)
    study_pk = _study_pk(archive, stored[0].study)
    report = compress_study(archive, study_pk, "jpeg2000-lossless")
    assert report.compressed == 2
    for s in stored:
        _assert_mirrored(archive, s.sop_instance, primary, mirror)
        assert rows_of(archive, s.sop_instance)[mirror].transfer_syntax == JPEG2000Lossless
    for root in (primary, mirror):  # the originals went from both
        names = _dcm(root)
        assert len(names) == 2 and all(n.endswith(".j2k.dcm") for n in names)
    with db.read(archive.engine) as conn:
        size = conn.scalar(select(study.c.size_bytes).where(study.c.pk == study_pk))
        on_primary = conn.scalar(
            select(func.sum(file.c.size)).where(file.c.filesystem_pk == _fs(archive, primary).pk)
        )
    assert size == on_primary  # the mirror copy is not counted twice

    (lossy,) = store_study(archive, "lossy-mirrored", ["CT_small.dcm"])
    compress_study(archive, _study_pk(archive, lossy.study), "jpeg2000", ratio=8)
    assert rows_of(archive, lossy.sop_instance) == {}  # replaced by a new SOP Instance
    assert not list(mirror.rglob(f"{lossy.sop_instance}*"))
    assert not list(primary.rglob(f"{lossy.sop_instance}*"))
    (new_sop,) = {
        n.split("_")[0] for n in _dcm(mirror) if not n.endswith(".j2k.dcm")
    }  # the lossy file
    _assert_mirrored(archive, new_sop, primary, mirror)
    assert rows_of(archive, new_sop)[mirror].transfer_syntax == JPEG2000


def test_compression_before_the_async_copy_mirrors_the_compressed_file(
    archive: Archive, tmp_path: Path
) -> None:
    primary = archive.settings.storage_dir
    mirror = add_mirror(archive, tmp_path / "mirror", "async")
    (s,) = store_study(archive, "async-then-compress", ["CT_small.dcm"])
    assert set(rows_of(archive, s.sop_instance)) == {primary.resolve()}
    compress_study(archive, _study_pk(archive, s.study), "jpeg2000-lossless")
    _assert_mirrored(archive, s.sop_instance, primary, mirror)
    Worker(archive, threads=1, processes=0, kinds=["mirror-study"]).run_until_idle()
    _assert_mirrored(archive, s.sop_instance, primary, mirror)  # nothing more, nothing stale
    assert _dcm(mirror) == _dcm(primary) and len(_dcm(mirror)) == 1


def test_migration_moves_the_mirror_copy_with_the_file(archive: Archive, tmp_path: Path) -> None:
    t1 = archive.settings.storage_dir
    m1 = add_mirror(archive, tmp_path / "m1")
    t2, m2, t3 = tmp_path / "t2", tmp_path / "m2", tmp_path / "t3"
    add_filesystem(archive.engine, t2, tier=2, capacity_bytes=10**8)
    add_filesystem(archive.engine, m2, mirror_of=t2)  # sync by default
    add_filesystem(archive.engine, t3, tier=3, capacity_bytes=10**8)
    stored = store_study(archive, "migrate-mirrored", NAMES)
    study_pk = _study_pk(archive, stored[0].study)

    moved = migrate_study(archive, study_pk, _fs(archive, t1).pk)
    assert moved.target == str(t2.resolve()) and moved.files == 2  # never to the mirror m2
    for s in stored:
        _assert_mirrored(archive, s.sop_instance, t2, m2)
    assert _dcm(t1) == _dcm(m1) == []

    with pytest.raises(InvalidDataset, match="mirror"):
        migrate_study(archive, study_pk, _fs(archive, t2).pk, _fs(archive, m1).pk)
    migrate_study(archive, study_pk, _fs(archive, t2).pk)  # to tier 3, which has no mirror
    for s in stored:
        (row,) = rows_of(archive, s.sop_instance).values()
        assert row.root == t3.resolve() and row.intact()
    assert _dcm(t2) == _dcm(m2) == []


def test_purge_and_archive_copies_do_not_count_the_mirror(archive: Archive, tmp_path: Path) -> None:
    t1 = archive.settings.storage_dir
    m1 = add_mirror(archive, tmp_path / "m1")
    t3 = tmp_path / "t3"
    add_filesystem(archive.engine, t3, tier=3, capacity_bytes=10**8, write_only=True)
    stored = store_study(archive, "purge-mirrored", NAMES)
    study_pk, t1_pk = _study_pk(archive, stored[0].study), _fs(archive, t1).pk

    assert purge_study(archive, study_pk, t1_pk) == 0  # the mirror copy is no copy elsewhere
    assert purge_study(archive, study_pk, _fs(archive, m1).pk) == 0  # a mirror is never purged
    copied = copy_to_tier(archive, study_pk, 1)
    assert copied.files == 0  # tier 1 holds it already; the mirror was no target
    copied = copy_to_tier(archive, study_pk)  # the default: tier 3, not the mirror's tier
    assert copied.target == str(t3.resolve()) and copied.files == 2

    assert purge_study(archive, study_pk, t1_pk) == sum(s.size for s in stored)
    for s in stored:
        (row,) = rows_of(archive, s.sop_instance).values()
        assert row.root == t3.resolve() and row.intact()
    assert _dcm(t1) == _dcm(m1) == []


def test_deleting_and_overwriting_remove_both_copies(tmp_path: Path, database_url: str) -> None:
    archive = make_archive(make_settings(tmp_path, database_url, duplicate_policy="overwrite"))
    try:
        primary = archive.settings.storage_dir
        mirror = add_mirror(archive, tmp_path / "mirror")
        stored = store_study(archive, "delete-mirrored", NAMES)
        assert len(_dcm(primary)) == len(_dcm(mirror)) == 2
        assert remove(archive, stored[0].study) == 2
        assert _dcm(primary) == _dcm(mirror) == []
        with db.read(archive.engine) as conn:
            assert conn.scalar(select(func.count()).select_from(file)) == 0

        ds = instance()
        put(archive, ds)
        old = set(_dcm(mirror))
        ds.InstitutionName = "ANOTHER HOSPITAL"
        assert put(archive, ds).outcome is Outcome.OVERWRITTEN
        _assert_mirrored(archive, str(ds.SOPInstanceUID), primary, mirror)
        assert len(_dcm(mirror)) == 1 and not old & set(_dcm(mirror))
    finally:
        archive.close()


def test_watermark_check_leaves_a_full_mirror_alone(archive: Archive, tmp_path: Path) -> None:
    mirror = add_mirror(archive, tmp_path / "mirror")
    stored = store_study(archive, "full-mirror", NAMES)
    set_filesystem(archive.engine, archive.settings.storage_dir, capacity_bytes=10**9)
    set_filesystem(archive.engine, mirror, capacity_bytes=sum(s.size for s in stored))
    assert _fs(archive, mirror).above_high
    ensure_services(archive)
    result = run_service(archive, "filesystem-watermark-check", force=True)
    assert result == "every filesystem below its high watermark"
    with db.read(archive.engine) as conn:
        assert conn.scalar(select(func.count()).select_from(work_item).where(
            work_item.c.kind.in_(("migrate-study", "delete-study", "purge-study"))
        )) == 0  # fmt: skip
