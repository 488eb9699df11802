"""The real DICOM files the tests use: pydicom's own test files and the pydicom-data package."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import data_store
import pydicom
from pydicom import dcmread

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
PYDICOM_DATA = Path(data_store.__file__).parent / "data"


@dataclass(frozen=True)
class TestFile:
    """A Part-10 test file and the identity the archive should give it."""

    path: Path
    sop_class: str
    sop_instance: str
    study: str
    series: str
    transfer_syntax: str


def local(name: str) -> Path:
    """A file by name from either collection (never downloads)."""
    for folder in (PYDICOM_FILES, PYDICOM_DATA):
        hits = sorted(folder.rglob(name))
        if hits:
            return hits[0]
    raise FileNotFoundError(name)


@cache
def part10_files() -> list[TestFile]:
    """Every Part-10 file of both collections with readable identifying UIDs."""
    out: list[TestFile] = []
    for folder in (PYDICOM_FILES, PYDICOM_DATA):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            with open(path, "rb") as fh:
                if fh.read(132)[128:132] != b"DICM":
                    continue
            try:
                ds = dcmread(path, stop_before_pixels=True)
                out.append(
                    TestFile(
                        path,
                        str(ds.SOPClassUID),
                        str(ds.SOPInstanceUID),
                        str(ds.StudyInstanceUID),
                        str(ds.SeriesInstanceUID),
                        str(ds.file_meta.TransferSyntaxUID),
                    )
                )
            except Exception:
                out.append(TestFile(path, "", "", "", "", ""))
    return out


def dataset_bytes(path: Path) -> bytes:
    """The bytes after the File Meta Information of a Part-10 file."""
    raw = path.read_bytes()
    meta_len = int.from_bytes(raw[140:144], "little")
    return raw[144 + meta_len :]
