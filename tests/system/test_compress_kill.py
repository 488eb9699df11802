"""Kill -9 during a compression: the study stays readable and complete; the item finishes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.uid import JPEGLSLossless
from sqlalchemy import select

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, instance, study
from hounsfield.workqueue.queue import enqueue
from tests.data import local
from tests.storage_helpers import finish_reclaimed, kill_worker_when, store_study

COUNT = 120


def _located(archive: Archive) -> dict[str, tuple[Path, str]]:
    with db.read(archive.engine) as conn:
        rows = conn.execute(
            select(instance.c.sop_iuid, filesystem.c.path, file.c.path, file.c.transfer_syntax)
            .join(file, file.c.instance_pk == instance.c.pk)
            .join(filesystem, filesystem.c.pk == file.c.filesystem_pk)
        ).all()
    return {sop: (Path(root) / rel, syntax) for sop, root, rel, syntax in rows}


def test_compression_killed_midway_is_reclaimed_and_finished(
    archive: Archive, tmp_path: Path
) -> None:
    stored = store_study(archive, "compress-me", ["CT_small.dcm"] * COUNT)
    with db.write(archive.engine) as conn:
        study_pk = conn.scalar(select(study.c.pk))
        params = {"syntax": "jpeg-ls-lossless"}
        pk = enqueue(conn, "compress-study", {"study_pk": study_pk, "params": params})
    assert pk is not None

    kill_worker_when(archive, tmp_path, archive.settings.storage_dir, "*.jls.dcm")

    pixels = dcmread(local("CT_small.dcm")).pixel_array
    located = _located(archive)
    assert set(located) == {s.sop_instance for s in stored}
    for path, syntax in located.values():  # readable, and in the syntax the index says
        ds = dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == syntax
        assert np.array_equal(ds.pixel_array, pixels)
    assert any(syntax != JPEGLSLossless for _p, syntax in located.values())

    item = finish_reclaimed(archive, pk)
    assert item.status == "completed" and item.failure_count == 1 and "killed" in item.error
    located = _located(archive)
    assert len(located) == COUNT
    assert all(syntax == JPEGLSLossless for _p, syntax in located.values())
    for path, _syntax in located.values():
        assert np.array_equal(dcmread(path).pixel_array, pixels)
    on_disk = sorted(p.name for p in archive.settings.storage_dir.rglob("*.dcm"))
    assert on_disk == sorted(p.name for p, _s in located.values())  # no original left behind
