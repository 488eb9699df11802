"""The large CR radiographs of the pydicom-data package used for the rendered-image figures."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid

# JPEG 2000 lossless first, then the same images uncompressed.
NAMES = ("RG1_J2KR", "RG3_J2KR", "RG1_UNCR", "RG3_UNCR")


@dataclass(frozen=True)
class Radiograph:
    """One test file and the UIDs that address it."""

    name: str
    path: Path
    study: str
    series: str
    sop: str
    transfer_syntax: str
    rows: int
    columns: int
    data: bytes = b""  # the Part-10 bytes to store; empty: the file itself

    def blob(self) -> bytes:
        """The bytes to store."""
        return self.data or self.path.read_bytes()

    def rendered_path(self, viewport: int) -> str:
        """The DICOMweb rendered URL below the root, for a square viewport."""
        return (
            f"/studies/{self.study}/series/{self.series}/instances/{self.sop}"
            f"/rendered?viewport={viewport},{viewport}"
        )


def data_folder() -> Path:
    """pydicom-data's local data folder (read directly: pydicom's own lookup may download)."""
    import data_store  # the pydicom-data package

    return Path(os.path.dirname(data_store.__file__)) / "data"


def load() -> list[Radiograph]:
    """The four radiographs with their UIDs; a clear failure if pydicom-data lacks one."""
    folder = data_folder()
    out: list[Radiograph] = []
    for name in NAMES:
        path = folder / f"{name}.dcm"
        if not path.is_file():
            raise RuntimeError(f"{path} not found: install pydicom-data")
        ds = dcmread(path, stop_before_pixels=True)
        out.append(
            Radiograph(
                name,
                path,
                str(ds.StudyInstanceUID),
                str(ds.SeriesInstanceUID),
                str(ds.SOPInstanceUID),
                str(ds.file_meta.TransferSyntaxUID),
                int(ds.Rows),
                int(ds.Columns),
            )
        )
    return out


def copy(rad: Radiograph) -> Radiograph:
    """The same image under a new SOP Instance UID, pixel data untouched (a fresh cold target)."""
    ds = dcmread(rad.path)
    sop = generate_uid()
    ds.SOPInstanceUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return replace(rad, sop=sop, data=out.getvalue())
