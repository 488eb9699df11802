"""Query/Retrieve identifiers: the datasets a C-FIND, C-MOVE or C-GET carries."""

from __future__ import annotations

from pydicom.dataset import Dataset


def query(level: str, **keys: str) -> Dataset:
    """An identifier at `level` (PATIENT, STUDY, SERIES or IMAGE) with these keys (a keyword
    with an empty value is a return key)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def retrieve(study: str, series: str | None = None, sop: str | None = None) -> Dataset:
    """The identifier of a study, or of one series or one instance of it."""
    level = "IMAGE" if sop else "SERIES" if series else "STUDY"
    keys = {"StudyInstanceUID": study}
    if series:
        keys["SeriesInstanceUID"] = series
    if sop:
        keys["SOPInstanceUID"] = sop
    return query(level, **keys)
