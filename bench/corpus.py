"""Synthetic CT corpus built from pydicom's CT_small.dcm header, cached under bench/work."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROWS = COLUMNS = 512
MANIFEST = "manifest.json"
FIRST_STUDY_DATE = date(2021, 3, 1)


@dataclass
class Series:
    """One generated series: its UID and its files in instance order."""

    uid: str
    number: int
    files: list[str] = field(default_factory=list)


@dataclass
class Study:
    """One generated study."""

    uid: str
    date: str
    patient_id: str
    patient_name: str
    series: list[Series] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        """Every file of the study, series by series."""
        return [Path(f) for s in self.series for f in s.files]


@dataclass
class Corpus:
    """The generated studies and their total size."""

    root: str
    studies: list[Study]
    total_bytes: int

    @property
    def instance_count(self) -> int:
        """Number of instances over all studies."""
        return sum(len(s.files) for s in self.studies)

    @property
    def date_range(self) -> str:
        """A DICOM date range covering every study."""
        dates = sorted(s.date for s in self.studies)
        return f"{dates[0]}-{dates[-1]}"


def _template() -> Dataset:
    path = get_testdata_file("CT_small.dcm")  # local file shipped with pydicom
    if path is None:
        raise SystemExit("pydicom's CT_small.dcm test file is missing")
    ds = dcmread(path)
    for tag in list(ds.keys()):
        if tag.group > 0x7FE0 or tag.group == 0xFFFC:
            del ds[tag]
    for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.Rows, ds.Columns = ROWS, COLUMNS
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def _phantom() -> np.ndarray:
    y, x = np.mgrid[0:ROWS, 0:COLUMNS]
    r = np.hypot(x - COLUMNS / 2, y - ROWS / 2)
    image = np.where(r < 200, 1000, 0) + np.where(r < 60, 400, 0)
    noise = np.random.default_rng(7).integers(-20, 20, size=(ROWS, COLUMNS))
    return (image + noise).astype("<i2")


def _write_instance(
    template: Dataset, pixels: np.ndarray, study: Study, series: Series, number: int, out: Path
) -> int:
    ds = template
    sop_uid = generate_uid()
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study.uid
    ds.SeriesInstanceUID = series.uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study.date
    ds.PatientID, ds.PatientName = study.patient_id, study.patient_name
    ds.AccessionNumber = f"ACC{study.patient_id}"
    ds.StudyID = study.patient_id
    ds.StudyDescription = "BENCH CT"
    ds.SeriesNumber = series.number
    ds.SeriesDescription = f"AXIAL {series.number}"
    ds.InstanceNumber = number
    z = -5.0 * number
    ds.ImagePositionPatient = [-169.0, -169.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation = z
    frame = pixels.copy()
    frame[0, :] = number  # every frame differs
    ds.PixelData = frame.tobytes()
    ds["PixelData"].VR = "OW"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(out, enforce_file_format=True)
    return out.stat().st_size


def generate(
    root: Path, studies: int, instances: int, series_size: int, prefix: str = "BENCH"
) -> Corpus:
    """Write `studies` x `instances` files into `root` (replacing what was there).

    Patients are named after `prefix` (BENCH001, ...), so two corpora can share one archive.
    """
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    template, pixels = _template(), _phantom()
    template.FrameOfReferenceUID = generate_uid()
    out: list[Study] = []
    total = 0
    for s in range(studies):
        study_date = (FIRST_STUDY_DATE + timedelta(days=7 * s)).strftime("%Y%m%d")
        study = Study(
            generate_uid(), study_date, f"{prefix}{s + 1:03d}", f"{prefix}^STUDY{s + 1:03d}"
        )
        template.FrameOfReferenceUID = generate_uid()
        for number in range(1, instances + 1):
            index = (number - 1) // series_size
            if index == len(study.series):
                study.series.append(Series(generate_uid(), index + 1))
            series = study.series[index]
            folder = root / f"study{s + 1:03d}" / f"series{index + 1:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{number:05d}.dcm"
            total += _write_instance(template, pixels, study, series, number, path)
            series.files.append(str(path))
        out.append(study)
    corpus = Corpus(str(root), out, total)
    (root / MANIFEST).write_text(json.dumps(asdict(corpus), indent=1))
    return corpus


def _load(root: Path) -> Corpus | None:
    manifest = root / MANIFEST
    if not manifest.is_file():
        return None
    raw = json.loads(manifest.read_text())
    studies = [
        Study(
            **{k: v for k, v in s.items() if k != "series"},
            series=[Series(**x) for x in s["series"]],
        )
        for s in raw["studies"]
    ]
    corpus = Corpus(raw["root"], studies, raw["total_bytes"])
    if corpus.root != str(root) or not all(p.is_file() for st in studies for p in st.files):
        return None
    return corpus


def ensure(
    root: Path, studies: int, instances: int, series_size: int, prefix: str = "BENCH"
) -> tuple[Corpus, bool]:
    """The cached corpus at `root`, generated first if missing; True if it was generated."""
    cached = _load(root)
    if cached is not None:
        return cached, False
    return generate(root, studies, instances, series_size, prefix), True


def warm(corpus: Corpus) -> None:
    """Read every file once so both servers are fed from the page cache."""
    for study in corpus.studies:
        for path in study.files:
            with open(path, "rb") as fh:
                while fh.read(1 << 20):
                    pass
