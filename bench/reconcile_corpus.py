"""A clinic's month of small synthetic CT instances (64x64), cached under bench/work/corpus."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from io import BytesIO
from pathlib import Path

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

FIRST_DAY = date(2024, 1, 1)
DAYS = 31
SIZES = (4, 12, 24, 48, 80)  # instances per study, in turn: a clinic's mix, 33.6 on average
SERIES_MAX = 40  # instances per series
SIDE = 64  # pixels per row and column, 16-bit
MANIFEST = "manifest.json"
GAP_SEED = 1  # the same missing instances in every run
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's UID root


@dataclass(frozen=True)
class Item:
    """One instance of the corpus."""

    study: str
    series: str
    sop: str
    day: str
    path: str


@dataclass(frozen=True)
class Month:
    """The corpus: every instance, day by day, and its folder."""

    root: Path
    items: list[Item]
    studies: int

    @property
    def date_from(self) -> str:
        """The first day, YYYYMMDD."""
        return FIRST_DAY.strftime("%Y%m%d")

    @property
    def date_to(self) -> str:
        """The last day, YYYYMMDD."""
        return (FIRST_DAY + timedelta(days=DAYS - 1)).strftime("%Y%m%d")

    @property
    def days(self) -> list[str]:
        """Every day of the month, YYYYMMDD."""
        return [(FIRST_DAY + timedelta(days=n)).strftime("%Y%m%d") for n in range(DAYS)]

    @property
    def nbytes(self) -> int:
        """Size of every file."""
        return sum(Path(i.path).stat().st_size for i in self.items)

    def gap(self, percent: float) -> list[Item]:
        """`percent` % of the instances, chosen at random (always the same ones)."""
        count = max(1, round(len(self.items) * percent / 100))
        return sorted(random.Random(GAP_SEED).sample(self.items, count), key=lambda i: i.path)


def _uid(stamp: int, kind: int, n: int) -> str:
    """A UID of fixed length (so that it can replace a placeholder in encoded bytes)."""
    return f"{UID_ROOT}{stamp}.{kind}.{10**9 + n}"


def _template(stamp: int) -> tuple[bytes, dict[str, str]]:
    """One encoded file (pixel data left off) and its placeholders, each a unique string of
    the same length as the values that replace it; empty when a placeholder is ambiguous."""
    slots = {
        "study": _uid(stamp, 1, 0),
        "series": _uid(stamp, 2, 0),
        "sop": _uid(stamp, 3, 0),
        "day": "19000101",
        "time": "235959",
        "pid": "Q9999999",
        "number": "+99999999999",
        "seriesno": "+88888888888",
        "z": "-8888.88",
    }
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, slots["sop"]
    ds.StudyDate = ds.SeriesDate = slots["day"]
    ds.StudyTime = slots["time"]
    ds.AccessionNumber = ds.PatientID = ds.StudyID = slots["pid"]
    ds.Modality, ds.Manufacturer, ds.StudyDescription = "CT", "BENCH", "CLINIC CT"
    ds.PatientName = "CLINIC^" + slots["pid"]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = slots["study"], slots["series"]
    ds.SeriesNumber, ds.InstanceNumber = slots["seriesno"], slots["number"]
    ds.ImagePositionPatient = ["-160", "-160", slots["z"]]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = _uid(stamp, 4, 0)
    ds.Rows = ds.Columns = SIDE
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = bytes(SIDE * SIDE * 2)
    ds["PixelData"].VR = "OW"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = UID(slots["sop"])
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    encoded = out.getvalue()[: -SIDE * SIDE * 2]
    counts = [encoded.count(v.encode()) for v in slots.values()]
    return (encoded, slots) if counts == [1, 1, 2, 2, 1, 4, 1, 1, 1] else (b"", {})


def _fill(template: bytes, slots: dict[str, str], values: dict[str, str]) -> bytes:
    for key, value in values.items():
        assert len(value) == len(slots[key]), (key, value)
        template = template.replace(slots[key].encode(), value.encode())
    return template


def generate(root: Path, per_day: int) -> Month:
    """Write `per_day` studies a day for the month into `root` (replacing what was there)."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    slots: dict[str, str] = {}
    while not slots:  # a placeholder also found inside the random stamp: draw again
        stamp = random.SystemRandom().randrange(10**8, 10**9)
        template, slots = _template(stamp)
    pixels = np.random.default_rng(7).integers(0, 2000, (SIDE, SIDE), dtype="<i2")
    items: list[Item] = []
    for s in range(DAYS * per_day):
        day = (FIRST_DAY + timedelta(days=s // per_day)).strftime("%Y%m%d")
        n, study = s % per_day, _uid(stamp, 1, s)
        values = {"study": study, "day": day, "time": f"{7 + n // 3:02d}{n % 3 * 20:02d}00"}
        values["pid"] = f"C{day[4:]}{n:03d}"
        folder = root / day / f"{n:03d}"
        folder.mkdir(parents=True)
        for number in range(1, SIZES[s % len(SIZES)] + 1):
            series = _uid(stamp, 2, s * 10 + (number - 1) // SERIES_MAX)
            sop = _uid(stamp, 3, len(items))
            values |= {"series": series, "sop": sop, "number": f"{number:>12}"}
            values["seriesno"] = f"{(number - 1) // SERIES_MAX + 1:>12}"
            values["z"] = f"{-2.5 * number:8.2f}"
            pixels[0, 0] = number
            path = folder / f"{number:03d}.dcm"
            path.write_bytes(_fill(template, slots, values) + pixels.tobytes())
            items.append(Item(study, series, sop, day, str(path)))
    (root / MANIFEST).write_text(json.dumps([asdict(i) for i in items]))
    return Month(root, items, DAYS * per_day)


def ensure(root: Path, per_day: int) -> tuple[Month, bool]:
    """The cached month at `root`, generated first when missing; True if it was generated."""
    try:
        items = [Item(**raw) for raw in json.loads((root / MANIFEST).read_text())]
    except (OSError, ValueError):
        return generate(root, per_day), True
    if not all(Path(i.path).is_file() for i in items):
        return generate(root, per_day), True
    return Month(root, items, len({i.study for i in items})), False
