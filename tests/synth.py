"""Small synthetic instances with chosen attributes, for matching and policy tests."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from hounsfield.archive.context import Archive
from hounsfield.archive.store import StoreResult, store
from hounsfield.storage.filemeta import split_part10


def instance(**attrs: object) -> Dataset:
    """A tiny CT image (4x4 pixels) with defaults that `attrs` override."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "P1"
    ds.PatientName = "DOE^JOHN"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.StudyDate = "20240115"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "A1"
    ds.StudyID = "S1"
    ds.StudyDescription = "CHEST"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.SeriesDescription = "AXIAL"
    ds.InstanceNumber = 1
    ds.Manufacturer = "ACME"
    ds.InstitutionName = "GENERAL HOSPITAL"
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(32))
    for key, value in attrs.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    if ds.get("Modality") == "MR" and "SOPClassUID" not in attrs:
        ds.SOPClassUID = MRImageStorage
    return ds


def encode(ds: Dataset) -> bytes:
    """The dataset's bytes in Explicit VR Little Endian, without File Meta."""
    buf = BytesIO()
    write_part10(ds, buf)
    return split_part10(buf.getvalue())[1]


def put(archive: Archive, ds: Dataset, **kwargs: object) -> StoreResult:
    """Store a synthetic dataset through the archive's ingest path."""
    return store(archive, ExplicitVRLittleEndian, encode(ds), **kwargs)  # type: ignore[arg-type]


def write_part10(ds: Dataset, path: Path | BytesIO) -> Path | BytesIO:
    """Write the dataset as a Part-10 file."""
    ds = ds.copy()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path
