"""Compression: every lossless syntax round-trips the real files pixel-exact; studies are
compressed in place with the index following; lossy makes new SOP Instance UIDs."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import JPEG2000, JPEG2000Lossless
from sqlalchemy import func, select

from hounsfield.archive.context import Archive
from hounsfield.catalog.parse import Encoding, decode_header
from hounsfield.db import engine as db
from hounsfield.db.tables import file, instance, study
from hounsfield.imaging.compress import LOSSLESS, SYNTAXES, Unsupported, compress
from hounsfield.imaging.decode import decomposition_levels
from hounsfield.lifecycle.compress import compress_study
from hounsfield.rules.model import Rule
from hounsfield.rules.saved import save_rule
from hounsfield.scheduled.scheduler import ensure_services, run_service
from hounsfield.workers.runner import Worker
from hounsfield.workqueue import admin
from tests.conftest import make_archive, make_settings
from tests.data import local, part10_files
from tests.storage_helpers import store_study


def _real_images() -> list[Path]:
    out = []
    for tf in part10_files():
        try:
            ds = dcmread(tf.path, stop_before_pixels=True)
        except Exception:
            continue
        if "PixelData" in ds or ds.get("Rows"):
            out.append(tf.path)
    return out


@pytest.mark.parametrize("name", LOSSLESS)
def test_every_real_image_round_trips_pixel_exact(name: str) -> None:
    done = 0
    for path in _real_images():
        try:
            ds = dcmread(path)
            compressed = compress(ds, name)
        except Unsupported:
            continue
        except Exception as exc:  # unreadable test files are pydicom's business, not ours
            if "PixelData" not in getattr(exc, "args", ("",))[0:1]:
                ds = None
            if ds is None:
                continue
            raise
        buf = BytesIO()
        compressed.dataset.save_as(buf, enforce_file_format=True)
        again = dcmread(BytesIO(buf.getvalue()))
        assert again.file_meta.TransferSyntaxUID == SYNTAXES[name]
        assert np.array_equal(again.pixel_array, ds.pixel_array), path.name
        assert again.SOPInstanceUID == ds.SOPInstanceUID
        done += 1
    assert done >= 80  # most of the real images are 8 or 16 bit grey or RGB


def test_jpeg2000_has_resolution_levels_for_reduced_decoding() -> None:
    ds = dcmread(local("US1_UNCR.dcm"))  # 640 x 480 RGB
    for name in ("jpeg2000-lossless", "htj2k-lossless"):
        out = compress(ds, name).dataset
        frame = next(generate_frames(out.PixelData, number_of_frames=1))
        assert decomposition_levels(frame) == 5


def test_lossy_makes_a_new_instance_with_lossy_attributes() -> None:
    ds = dcmread(local("CT_small.dcm"))
    result = compress(ds, "jpeg2000", ratio=10)
    out = result.dataset
    assert out.file_meta.TransferSyntaxUID == JPEG2000
    assert out.SOPInstanceUID != ds.SOPInstanceUID
    assert out.SourceImageSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert out.LossyImageCompression == "01"
    assert out.LossyImageCompressionMethod == "ISO_15444_1"
    assert float(out.LossyImageCompressionRatio) >= 10 and result.ratio >= 10
    assert out.ImageType[0] == "DERIVED"
    assert out.pixel_array.shape == ds.pixel_array.shape
    with pytest.raises(Unsupported):
        compress(out, "jpeg2000-lossless")  # never recompress what was lossy


def _pixels_by_sop(archive: Archive) -> dict[str, tuple[str, Dataset]]:
    with db.read(archive.engine) as conn:
        rows = conn.execute(
            select(
                instance.c.sop_iuid, file.c.path, file.c.transfer_syntax, instance.c.header
            ).join(file, file.c.instance_pk == instance.c.pk)
        ).all()
    out = {}
    for sop, rel, syntax, header in rows:
        enc = Encoding.of(syntax)
        assert decode_header(header, enc.implicit_vr, enc.little_endian).SOPInstanceUID == sop
        path = archive.settings.storage_dir.resolve() / rel
        out[sop] = (syntax, dcmread(path))
    return out


def test_compress_study_replaces_files_and_updates_the_index(archive: Archive) -> None:
    names = ["CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "SC_rgb.dcm", "rtdose.dcm"]
    stored = store_study(archive, "compress-me", names)
    before = {sop: ds.pixel_array for sop, (_s, ds) in _pixels_by_sop(archive).items()}
    with db.read(archive.engine) as conn:
        study_pk = conn.scalar(select(study.c.pk))
    report = compress_study(archive, study_pk, "jpeg2000-lossless")
    assert report.compressed == 4 and report.skipped == 1  # 32-bit dose grid stays
    after = _pixels_by_sop(archive)
    assert set(after) == {s.sop_instance for s in stored}
    for sop, (syntax, ds) in after.items():
        assert np.array_equal(ds.pixel_array, before[sop])
        assert (syntax == JPEG2000Lossless) == (ds.Modality != "RTDOSE")
    files = sorted(p.name for p in archive.settings.storage_dir.rglob("*.dcm"))
    assert len(files) == 5 and sum(n.endswith(".j2k.dcm") for n in files) == 4
    with db.read(archive.engine) as conn:
        assert conn.scalar(select(study.c.size_bytes)) == conn.scalar(select(func.sum(file.c.size)))
    again = compress_study(archive, study_pk, "jpeg2000-lossless")
    assert again.compressed == 0 and again.reasons["already compressed"] == 4


def test_lossy_rule_compresses_through_the_queue_and_process_pool(
    tmp_path: Path, database_url: str
) -> None:
    archive = make_archive(
        make_settings(tmp_path, database_url, study_settle_seconds=0, queue_processes=1)
    )
    try:
        save_rule(
            archive.engine,
            Rule("lossy-ct", "lossy-compress", is_default=True, params={"ratio": 8}),
        )
        (ct,) = store_study(archive, "lossy", ["CT_small.dcm"])
        worker = Worker(archive, threads=1)
        assert worker.run_until_idle() == 1  # process study: the rule makes it eligible
        ensure_services(archive)
        assert (
            run_service(archive, "lossy-compress", force=True)
            == "queued 1 studies for lossy-compress"
        )
        assert worker.run_until_idle() == 1
        (item,) = admin.list_items(archive.engine, kind="compress-study")
        assert item.status == "completed" and item.result.startswith("compressed 1"), item
        ((sop, (syntax, ds)),) = _pixels_by_sop(archive).items()
        assert sop != ct.sop_instance and syntax == JPEG2000
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == ct.sop_instance
        assert not list(archive.settings.storage_dir.rglob(f"{ct.sop_instance}*"))
        assert (
            run_service(archive, "lossy-compress", force=True)
            == "queued 0 studies for lossy-compress"
        )
    finally:
        archive.close()
