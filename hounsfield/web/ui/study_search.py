"""The study search form as a C-FIND identifier, and the studies it finds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from hounsfield.archive.context import Archive
from hounsfield.archive.query import find

STUDY_KEYS = (
    "StudyInstanceUID",
    "PatientName",
    "PatientID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyDescription",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_KEYS = (
    "SeriesInstanceUID",
    "SeriesNumber",
    "Modality",
    "SeriesDescription",
    "BodyPartExamined",
    "NumberOfSeriesRelatedInstances",
)


@dataclass(frozen=True)
class Search:
    """What the operator asked for; empty fields match everything."""

    patient_name: str = ""
    patient_id: str = ""
    accession: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    partition: str = ""

    @property
    def empty(self) -> bool:
        """True before anything was asked."""
        return not any(getattr(self, k) for k in self.__dataclass_fields__ if k != "partition")

    def identifier(self) -> Dataset:
        """The C-FIND identifier of the search (names match anywhere, case-insensitively)."""
        ds = _identifier("STUDY", STUDY_KEYS)
        name = self.patient_name.strip()
        if name and not any(c in name for c in "*?"):
            name = f"*{name}*"
        ds.PatientName = name
        ds.PatientID = self.patient_id.strip()
        ds.AccessionNumber = self.accession.strip()
        ds.ModalitiesInStudy = self.modality.strip().upper()
        low, high = _day(self.date_from), _day(self.date_to)
        ds.StudyDate = f"{low}-{high}" if low or high else ""
        return ds


def _day(value: str) -> str:
    """A date input (YYYY-MM-DD or YYYYMMDD) as DICOM's YYYYMMDD."""
    return value.strip().replace("-", "")


def _identifier(level: str, keys: tuple[str, ...]) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for key in keys:
        setattr(ds, key, "")
    return ds


def _plain(ds: Dataset, keys: tuple[str, ...]) -> dict[str, Any]:
    """An answer as a dict of text (multi-values joined with commas)."""
    out: dict[str, Any] = {}
    for key in keys:
        value = ds.get(key, "")
        if value is None:
            value = ""
        elif isinstance(value, MultiValue | list | tuple):
            value = ", ".join(str(v) for v in value)
        out[key] = str(value)
    return out


def search_studies(archive: Archive, wanted: Search, limit: int = 200) -> list[dict[str, Any]]:
    """The studies matching a search, as dicts keyed by attribute keyword."""
    found = find(archive, wanted.identifier(), partition=wanted.partition or None, limit=limit)
    return [_plain(ds, STUDY_KEYS) for ds in found]


def one_study(archive: Archive, partition: str, uid: str) -> dict[str, Any] | None:
    """The study's attributes, or None."""
    ds = _identifier("STUDY", STUDY_KEYS)
    ds.StudyInstanceUID = uid
    for answer in find(archive, ds, partition=partition, limit=1):
        return _plain(answer, STUDY_KEYS)
    return None


def study_series(archive: Archive, partition: str, uid: str) -> list[dict[str, Any]]:
    """The series of a study."""
    ds = _identifier("SERIES", SERIES_KEYS)
    ds.StudyInstanceUID = uid
    return [_plain(answer, SERIES_KEYS) for answer in find(archive, ds, partition=partition)]
