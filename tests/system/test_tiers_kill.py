"""Kill -9 during a tier migration: the study stays readable and complete; the item finishes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom import dcmread
from sqlalchemy import func, select

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, instance, study
from hounsfield.storage.tiers import add_filesystem, list_filesystems
from hounsfield.workqueue.queue import enqueue
from tests.data import local
from tests.storage_helpers import finish_reclaimed, kill_worker_when, store_study

COUNT = 120


def _located(archive: Archive) -> dict[str, Path]:
    with db.read(archive.engine) as conn:
        rows = conn.execute(
            select(instance.c.sop_iuid, filesystem.c.path, file.c.path)
            .join(file, file.c.instance_pk == instance.c.pk)
            .join(filesystem, filesystem.c.pk == file.c.filesystem_pk)
        ).all()
    return {sop: Path(root) / rel for sop, root, rel in rows}


def test_migration_killed_midway_is_reclaimed_and_finished(
    archive: Archive, tmp_path: Path
) -> None:
    stored = store_study(archive, "migrate-me", ["CT_small.dcm"] * COUNT)
    tier2 = tmp_path / "tier2"
    add_filesystem(archive.engine, tier2, tier=2, capacity_bytes=100_000_000)
    t1, t2 = (u.pk for u in list_filesystems(archive.engine))
    with db.write(archive.engine) as conn:
        study_pk = conn.scalar(select(study.c.pk))
        pk = enqueue(conn, "migrate-study", {"study_pk": study_pk, "filesystem": t1, "target": t2})
    assert pk is not None

    kill_worker_when(archive, tmp_path, tier2, "*.dcm")

    pixels = dcmread(local("CT_small.dcm")).pixel_array
    located = _located(archive)
    assert set(located) == {s.sop_instance for s in stored}
    for path in located.values():  # every object readable where the index says it is
        assert np.array_equal(dcmread(path).pixel_array, pixels)

    item = finish_reclaimed(archive, pk)
    assert item.status == "completed" and item.failure_count == 1 and "killed" in item.error
    located = _located(archive)
    assert len(located) == COUNT and all(
        p.is_relative_to(tier2.resolve()) for p in located.values()
    )
    assert all(p.is_file() for p in located.values())
    assert not list(archive.settings.storage_dir.rglob("*.dcm"))
    assert not list(tier2.rglob("*.tmp"))
    with db.read(archive.engine) as conn:
        assert conn.scalar(select(func.count()).select_from(file)) == COUNT
