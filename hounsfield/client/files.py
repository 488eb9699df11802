"""What a client sends: Part-10 files found under paths, and datasets written as such files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian

from hounsfield.uids import is_valid_uid

_TAGS = ["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID"]


@dataclass(frozen=True)
class Part10:
    """A Part-10 file to send as it is (the SCU layer's `Stored`), and its study."""

    path: Path
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    study: str


def walk(paths: Iterable[Path | str]) -> Iterator[Path]:
    """The files named, and every file under the folders named (sorted, recursive)."""
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            yield path
            continue
        for folder, dirs, names in os.walk(path):
            dirs.sort()
            for name in sorted(names):
                yield Path(folder) / name


def read(path: Path) -> Part10:
    """The identity of a Part-10 file from its File Meta and first elements (pixel data is
    not read); ValueError when it is not a Part-10 file with valid UIDs."""
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    except (InvalidDicomError, OSError, EOFError) as exc:
        raise ValueError(f"not a DICOM Part-10 file: {exc}") from exc
    meta = ds.get("file_meta") or FileMetaDataset()
    syntax = str(meta.get("TransferSyntaxUID", "") or "")
    sop_class = str(meta.get("MediaStorageSOPClassUID", "") or ds.get("SOPClassUID", "") or "")
    sop_instance = str(
        meta.get("MediaStorageSOPInstanceUID", "") or ds.get("SOPInstanceUID", "") or ""
    )
    for name, value in (("transfer syntax", syntax), ("SOP class", sop_class)):
        if not is_valid_uid(value):
            raise ValueError(f"no valid {name} UID in its File Meta")
    if not is_valid_uid(sop_instance):
        raise ValueError("no valid SOP Instance UID")
    return Part10(path, sop_class, sop_instance, syntax, str(ds.get("StudyInstanceUID", "") or ""))


def write(ds: Dataset, path: Path) -> Path:
    """Write a dataset as a Part-10 file at `path` (in its File Meta's transfer syntax, or
    explicit VR little endian); the caller's dataset is left as it was."""
    copy = ds.copy()
    meta = FileMetaDataset(ds.get("file_meta") or FileMetaDataset())
    meta.TransferSyntaxUID = meta.get("TransferSyntaxUID") or ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    copy.file_meta = meta
    copy.save_as(path, enforce_file_format=True)
    return path
