"""Query identifiers: "Keyword=value" or "gggg,eeee=value" keys, and what each level returns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import Tag

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
RETURNED: dict[str, tuple[str, ...]] = {
    "PATIENT": ("PatientName", "PatientID", "PatientBirthDate", "NumberOfPatientRelatedStudies"),
    "STUDY": (
        "PatientName",
        "PatientID",
        "StudyDate",
        "AccessionNumber",
        "StudyDescription",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedInstances",
        "StudyInstanceUID",
    ),
    "SERIES": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "NumberOfSeriesRelatedInstances",
    ),
    "IMAGE": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "SOPClassUID",
        "InstanceNumber",
    ),
}


def parse_keys(keys: Iterable[str]) -> dict[str, str]:
    """ "PatientID=123" and "0010,0020=123" as {keyword or tag: value}; a key without "=" is
    asked to be returned (an empty value). ValueError for an unknown keyword or tag."""
    out: dict[str, str] = {}
    for text in keys:
        name, _sep, value = text.partition("=")
        name = name.strip()
        _tag(name)
        out[name] = value
    return out


def identifier(
    query: Dataset | Mapping[str, object] | None, level: str, *, returned: bool = False
) -> Dataset:
    """The identifier of a query at `level`: `query`'s keys, and with `returned` the
    level's usual return keys it does not set."""
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"query level is one of {', '.join(LEVELS)}, not {level!r}")
    if isinstance(query, Dataset):
        ds = query.copy()
    else:
        ds = Dataset()
        for name, value in (query or {}).items():
            tag = _tag(name)
            ds.add_new(tag, dictionary_VR(tag), value)
    ds.QueryRetrieveLevel = level
    if returned:
        for keyword in RETURNED[level]:
            if keyword not in ds:
                ds.add_new(_tag(keyword), dictionary_VR(keyword), "")
    return ds


def _tag(name: str) -> int:
    found = tag_for_keyword(name)
    if found is None:
        try:
            group, element = (int(p, 16) for p in name.split(","))
            found = int(Tag(group, element))
            dictionary_VR(found)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            raise ValueError(f"unknown attribute {name!r}") from exc
    return int(found)
