"""Which copy the archive reads: the primary, then its mirror, then other tiers' copies; and
storage commitment vouching for an object whose primary file is damaged but mirrored."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset
from sqlalchemy import select

from hounsfield.archive.commit import PROCESSING_FAILURE
from hounsfield.archive.commit import verify as commitment
from hounsfield.archive.context import Archive
from hounsfield.archive.query import Located, locate, locate_instance
from hounsfield.db import engine as db
from hounsfield.db.tables import study
from hounsfield.lifecycle.archive_copy import copy_to_tier
from hounsfield.storage.tiers import add_filesystem
from tests.mirror_helpers import add_mirror, flip_bytes, rows_of
from tests.synth import instance, put


def _locate(archive: Archive, sop: str) -> Located:
    ident = Dataset()
    ident.QueryRetrieveLevel = "IMAGE"
    ident.SOPInstanceUID = sop
    (found,) = locate(archive, ident)
    return found


def test_reading_order_primary_mirror_then_tier_copies(archive: Archive, tmp_path: Path) -> None:
    mirror = add_mirror(archive, tmp_path / "mirror")
    t3 = tmp_path / "t3"
    add_filesystem(archive.engine, t3, tier=3, capacity_bytes=10**8, write_only=True)
    ds = instance()
    sop = str(ds.SOPInstanceUID)
    put(archive, ds)
    with db.read(archive.engine) as conn:
        study_pk = int(conn.scalar(select(study.c.pk)))  # type: ignore[arg-type]
    copy_to_tier(archive, study_pk, 3)
    rows = rows_of(archive, sop)
    primary = rows[archive.settings.storage_dir.resolve()]
    found = _locate(archive, sop)
    assert found.path == primary.file
    assert found.fallbacks == (rows[mirror].file, rows[t3.resolve()].file)
    assert found.readable() == primary.file
    # An instance URL's own statement finds the same copies in the same order.
    uids = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), sop)
    assert locate_instance(archive, *uids, archive.resolve(None).pk) == found
    assert locate_instance(archive, uids[0], uids[0], sop, archive.resolve(None).pk) is None
    assert locate_instance(archive, *uids, archive.resolve(None).pk + 99) is None

    primary.file.unlink()
    assert _locate(archive, sop).readable() == rows[mirror].file
    rows[mirror].file.write_bytes(b"truncated")
    assert _locate(archive, sop).readable() == rows[t3.resolve()].file
    rows[t3.resolve()].file.unlink()
    assert _locate(archive, sop).readable() == primary.file  # none: its reader says why


def test_storage_commitment_falls_back_to_the_mirror(archive: Archive, tmp_path: Path) -> None:
    mirror = add_mirror(archive, tmp_path / "mirror")
    ds = instance()
    sop, cuid = str(ds.SOPInstanceUID), str(ds.SOPClassUID)
    put(archive, ds)
    rows = rows_of(archive, sop)
    flip_bytes(rows[archive.settings.storage_dir.resolve()].file)
    assert commitment(archive, [(cuid, sop)]).success == [(cuid, sop)]
    flip_bytes(rows[mirror].file)
    assert commitment(archive, [(cuid, sop)]).failure == [(cuid, sop, PROCESSING_FAILURE)]
