"""QIDO-RS: query parameters become a C-FIND identifier; matching is the archive's one find()."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request, Response
from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from hounsfield.archive.context import Archive
from hounsfield.archive.query import KEYS, Level, find
from hounsfield.catalog.partitions import Partition
from hounsfield.sites.virtual import virtual_find
from hounsfield.web.dicomweb.common import DICOM_JSON, BadRequest, base_url, uids
from hounsfield.web.dicomweb.packed import json_response
from hounsfield.web.dicomweb.tenant import AtPartition

RESERVED = {"limit", "offset", "fuzzymatching", "includefield"}
MAX_NUMBER = 2**31 - 1  # the largest limit or offset taken
STUDY_FIELDS = [
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "InstanceAvailability",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
]
STUDY_ONLY = {"ModalitiesInStudy", "InstanceAvailability"}
SERIES_FIELDS = [
    "Modality",
    "SeriesDescription",
    "SeriesNumber",
    "SeriesInstanceUID",
    "NumberOfSeriesRelatedInstances",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
]
INSTANCE_FIELDS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceAvailability",
    "InstanceNumber",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
]
LEVEL_KEYS = {"STUDY": ("PATIENT", "STUDY"), "SERIES": ("SERIES",), "IMAGE": ("IMAGE",)}
FUZZY_WARNING = (
    '299 hounsfield "fuzzymatching is not supported: only literal matching was performed"'
)
RETRIEVE_URL = "00081190"
# Modality, ModalitiesInStudy, SOPClassesInStudy: clients (OHIF among them) read their Value as
# a list without checking that it is there, so an answer leaves them out rather than sending
# them with no Value (a study whose series have no Modality, Modality asked of a study).
LIST_VALUED = ("00080060", "00080061", "00080062")


def _tag(key: str) -> Any:
    if "." in key:
        raise BadRequest(f"sequence matching ({key}) is not supported")
    if len(key) == 8 and all(c in "0123456789abcdefABCDEF" for c in key):
        return Tag(int(key, 16))
    tag = tag_for_keyword(key)
    if tag is None:
        raise BadRequest(f"unknown attribute {key!r} in the query")
    return Tag(tag)


def _element(tag: Any, value: str | None) -> DataElement:
    try:
        vr = dictionary_VR(tag)
    except KeyError as exc:
        raise BadRequest(f"attribute {tag} is not in the DICOM dictionary") from exc
    if vr == "SQ":
        raise BadRequest(f"sequence attribute {tag} cannot be matched")
    vr = vr.split(" or ")[0]
    try:
        return DataElement(tag, vr, value, validation_mode=config.IGNORE)
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. '*' for an IS attribute
        raise BadRequest(f"attribute {tag} cannot match {value!r}: {exc}") from exc


def _int(params: Any, name: str, default: int | None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be a whole number, got {raw!r}") from exc
    if value < 0:
        raise BadRequest(f"{name} must not be negative")
    if value > MAX_NUMBER:  # beyond what SQLite and PostgreSQL take as an integer
        raise BadRequest(f"{name} must be at most {MAX_NUMBER}")
    return value


def identifier(level: Level, params: Any, scope: dict[str, str]) -> tuple[Dataset, bool]:
    """The C-FIND identifier for a QIDO-RS request, and whether includefield=all was asked."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    levels = ["STUDY", "SERIES", "IMAGE"]
    depth = levels.index(level)
    scoped = set(scope)
    fields: list[str] = []
    if depth == 0 or "StudyInstanceUID" not in scoped:
        fields += STUDY_FIELDS if depth == 0 else [f for f in STUDY_FIELDS if f not in STUDY_ONLY]
    if depth == 1 or (depth == 2 and "SeriesInstanceUID" not in scoped):
        fields += SERIES_FIELDS
    if depth == 2:
        fields += INSTANCE_FIELDS
    fields += ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"][: depth + 1]
    everything = False
    matches: dict[Any, list[str]] = {}
    for key, value in params.multi_items():
        if key.lower() in RESERVED:
            if key.lower() == "includefield":
                for name in (v.strip() for v in value.split(",")):
                    if name.lower() == "all":
                        everything = True
                    elif name:
                        fields.append(name)
            continue
        matches.setdefault(_tag(key), []).append(value)
    if everything:
        allowed = {lv for lvl in levels[: depth + 1] for lv in LEVEL_KEYS[lvl]}
        fields += [kw for kw, key in KEYS.items() if key.level in allowed]
        fields += ["ModalitiesInStudy", "SOPClassesInStudy"] if depth == 0 else []
    for kw, uid in scope.items():
        ds.add(_element(_tag(kw), uid))
    for tag, values in matches.items():
        if tag in ds:
            continue
        elem = _element(tag, None)
        joined = "\\".join(values)
        if elem.VR == "UI":
            joined = joined.replace(",", "\\")
        ds.add(_element(tag, joined or None))
    for name in fields:
        tag = _tag(name)
        if tag not in ds:
            ds.add(_element(tag, None))
    return ds, everything


def _json(ds: Dataset, base: str, level: Level) -> dict[str, Any]:
    ds.pop(Tag(0x00080052), None)  # QueryRetrieveLevel is not part of a QIDO-RS answer
    out = ds.to_json_dict()
    for tag in LIST_VALUED:
        if tag in out and not out[tag].get("Value"):
            del out[tag]
    url = f"{base}/studies/{ds.get('StudyInstanceUID', '')}"
    if level != "STUDY":
        url += f"/series/{ds.get('SeriesInstanceUID', '')}"
    if level == "IMAGE":
        url += f"/instances/{ds.get('SOPInstanceUID', '')}"
    out[RETRIEVE_URL] = {"vr": "UR", "Value": [url]}
    return out


def search(
    archive: Archive,
    partition: Partition,
    level: Level,
    params: Any,
    scope: dict[str, str],
    base: str,
) -> tuple[bytes, list[str]]:
    """Run one QIDO-RS search in `partition`: the JSON body and the Warning header values."""
    limit_cap = archive.settings.qido_max_limit
    limit = _int(params, "limit", limit_cap)
    offset = _int(params, "offset", 0) or 0
    if limit is not None and limit > limit_cap:
        raise BadRequest(f"limit {limit} exceeds the maximum of {limit_cap}")
    ident, everything = identifier(level, params, scope)
    whole = everything and level == "IMAGE"
    if partition.virtual:
        found: Iterable[Dataset] = virtual_find(
            archive, ident, partition, limit=limit, offset=offset, whole_header=whole
        )
    else:
        found = find(
            archive, ident, partition=partition, limit=limit, offset=offset, whole_header=whole
        )
    body = [_json(ds, base, level) for ds in found]
    warnings = []
    if str(params.get("fuzzymatching", "")).lower() == "true":
        warnings.append(FUZZY_WARNING)
    return json.dumps(body, ensure_ascii=False).encode(), warnings


def router(archive: Archive) -> APIRouter:
    """The QIDO-RS routes in every path form."""
    api = APIRouter()

    def answer(
        request: Request, partition: Partition, level: Level, scope: dict[str, str]
    ) -> Response:
        body, warnings = search(
            archive, partition, level, request.query_params, scope, base_url(request)
        )
        headers = {"Warning": ", ".join(warnings)} if warnings else {}
        return json_response(body, DICOM_JSON, request.headers.get("accept-encoding"), headers)

    @api.get("/studies")
    def studies(request: Request, partition: AtPartition) -> Response:
        return answer(request, partition, "STUDY", {})

    @api.get("/series")
    def all_series(request: Request, partition: AtPartition) -> Response:
        return answer(request, partition, "SERIES", {})

    @api.get("/instances")
    def all_instances(request: Request, partition: AtPartition) -> Response:
        return answer(request, partition, "IMAGE", {})

    @api.get("/studies/{study}/series")
    def study_series(request: Request, partition: AtPartition, study: str) -> Response:
        study = uids(study)[0]
        return answer(request, partition, "SERIES", {"StudyInstanceUID": study})

    @api.get("/studies/{study}/instances")
    def study_instances(request: Request, partition: AtPartition, study: str) -> Response:
        study = uids(study)[0]
        return answer(request, partition, "IMAGE", {"StudyInstanceUID": study})

    @api.get("/studies/{study}/series/{series}/instances")
    def series_instances(
        request: Request, partition: AtPartition, study: str, series: str
    ) -> Response:
        study, series_uid, _ = uids(study, series)
        scope = {"StudyInstanceUID": study, "SeriesInstanceUID": series_uid or ""}
        return answer(request, partition, "IMAGE", scope)

    return api
