"""Query the index the PS3.4 way: C-FIND and QIDO-RS share this one implementation."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from sqlalchemy import Connection, Select, bindparam, func, select
from sqlalchemy.sql.elements import ColumnElement

from hounsfield.archive.context import Archive
from hounsfield.catalog.joins import INSTANCE_FILES
from hounsfield.catalog.matching import condition
from hounsfield.catalog.parse import Encoding, decode_header
from hounsfield.catalog.partitions import Partition
from hounsfield.db import engine as db
from hounsfield.db.prepared import Prepared
from hounsfield.db.tables import file, filesystem, instance, patient, series, study
from hounsfield.dicomnet import preencoded
from hounsfield.errors import InvalidDataset

log = logging.getLogger(__name__)
Level = Literal["PATIENT", "STUDY", "SERIES", "IMAGE"]
LEVELS: tuple[Level, ...] = ("PATIENT", "STUDY", "SERIES", "IMAGE")
Root = Literal["patient", "study"]


@dataclass(frozen=True)
class Key:
    """A query key the index answers: its level, column, and matching kind."""

    level: Level
    column: Any
    kind: str
    match: Any = None  # the column matched against, when not `column` itself

    @property
    def matched(self) -> Any:
        """The column the matching condition applies to."""
        return self.column if self.match is None else self.match


KEYS: dict[str, Key] = {
    "PatientID": Key("PATIENT", patient.c.patient_id, "STR"),
    "IssuerOfPatientID": Key("PATIENT", patient.c.issuer, "STR"),
    "PatientName": Key("PATIENT", patient.c.patient_name, "PN", patient.c.name_key),
    "PatientBirthDate": Key("PATIENT", patient.c.birth_date, "DA"),
    "PatientSex": Key("PATIENT", patient.c.sex, "STR"),
    "StudyInstanceUID": Key("STUDY", study.c.study_iuid, "UI"),
    "StudyDate": Key("STUDY", study.c.study_date, "DA"),
    "StudyTime": Key("STUDY", study.c.study_time, "TM"),
    "AccessionNumber": Key("STUDY", study.c.accession_number, "STR"),
    "StudyID": Key("STUDY", study.c.study_id, "STR"),
    "StudyDescription": Key("STUDY", study.c.description, "STR"),
    "ReferringPhysicianName": Key(
        "STUDY", study.c.referring_physician, "PN", study.c.referring_key
    ),
    "NumberOfStudyRelatedSeries": Key("STUDY", study.c.num_series, "COUNT"),
    "NumberOfStudyRelatedInstances": Key("STUDY", study.c.num_instances, "COUNT"),
    "SeriesInstanceUID": Key("SERIES", series.c.series_iuid, "UI"),
    "Modality": Key("SERIES", series.c.modality, "STR"),
    "SeriesNumber": Key("SERIES", series.c.series_number, "STR"),
    "SeriesDescription": Key("SERIES", series.c.description, "STR"),
    "BodyPartExamined": Key("SERIES", series.c.body_part, "STR"),
    "SeriesDate": Key("SERIES", series.c.series_date, "DA"),
    "SeriesTime": Key("SERIES", series.c.series_time, "TM"),
    "NumberOfSeriesRelatedInstances": Key("SERIES", series.c.num_instances, "COUNT"),
    "SOPInstanceUID": Key("IMAGE", instance.c.sop_iuid, "UI"),
    "SOPClassUID": Key("IMAGE", instance.c.sop_cuid, "UI"),
    "InstanceNumber": Key("IMAGE", instance.c.instance_number, "STR"),
    "NumberOfFrames": Key("IMAGE", instance.c.number_of_frames, "COUNT"),
}
SPECIAL = {
    "ModalitiesInStudy",
    "SOPClassesInStudy",
    "NumberOfPatientRelatedStudies",
    "NumberOfPatientRelatedSeries",
    "NumberOfPatientRelatedInstances",
    "RetrieveAETitle",
    "InstanceAvailability",
    "QueryRetrieveLevel",
    "SpecificCharacterSet",
}
SPECIFIC_CHARACTER_SET = 0x00080005
_BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
BATCH = 200
_TABLE_OF = {"PATIENT": patient, "STUDY": study, "SERIES": series, "IMAGE": instance}


@dataclass(frozen=True)
class Located:
    """One stored object to send: what it is, where it is, how it is encoded, and where the
    same bytes are kept besides (its mirror copy, copies on other tiers), in reading order."""

    sop_class: str
    sop_instance: str
    transfer_syntax: str
    path: Path
    size: int
    fallbacks: tuple[Path, ...] = ()

    def readable(self) -> Path:
        """The file to read: `path` when it is there with its indexed size, else the first
        fallback that is (logged); else `path` itself, whose reader reports the error."""
        if not self.fallbacks:  # nothing to choose: no stat per object sent
            return self.path
        for candidate in (self.path, *self.fallbacks):
            try:
                if candidate.stat().st_size != self.size:
                    continue
            except OSError:
                continue
            if candidate is not self.path:
                log.warning(
                    "%s: %s is missing or changed, read %s", self.sop_instance, self.path, candidate
                )
            return candidate
        return self.path


def query_level(identifier: Dataset) -> Level:
    """The Query/Retrieve Level of an identifier, validated."""
    level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    if level not in LEVELS:
        raise InvalidDataset(f"invalid Query/Retrieve Level {level!r}")
    return level  # type: ignore[return-value]


@functools.lru_cache(maxsize=256)
def _base(level: Level, partition_pk: int) -> Select[Any]:
    """The matching rows of a level in a partition, before the query's own conditions.
    Built once per level and partition: a statement is immutable (each `where` makes a new
    one), and building its joins was a fifth of a C-FIND's time in the archive."""
    if level == "PATIENT":
        return select(patient.c.pk).where(patient.c.partition_pk == partition_pk)
    stmt = select(_TABLE_OF[level].c.pk)
    if level == "IMAGE":
        stmt = stmt.select_from(instance).join(series, series.c.pk == instance.c.series_pk)
        stmt = stmt.join(study, study.c.pk == series.c.study_pk)
    elif level == "SERIES":
        stmt = stmt.select_from(series).join(study, study.c.pk == series.c.study_pk)
    else:
        stmt = stmt.select_from(study)
    stmt = stmt.join(patient, patient.c.pk == study.c.patient_pk)
    return stmt.where(study.c.partition_pk == partition_pk)


def _conditions(identifier: Dataset, level: Level) -> list[ColumnElement[bool]]:
    depth = LEVELS.index(level)
    out: list[ColumnElement[bool]] = []
    for elem in identifier:
        keyword = elem.keyword
        value = _text(elem)
        if keyword in KEYS:
            key = KEYS[keyword]
            if LEVELS.index(key.level) > depth or key.kind == "COUNT":
                continue
            cond = condition(key.matched, key.kind, value)
        elif keyword == "ModalitiesInStudy" and depth >= 1:
            cond = _modalities(value)
        elif keyword == "SOPClassesInStudy" and depth >= 1:
            cond = _sop_classes(value)
        else:
            continue
        if cond is not None:
            out.append(cond)
    return out


def _modalities(value: str) -> ColumnElement[bool] | None:
    cond = condition(series.c.modality, "STR", value)
    if cond is None:
        return None
    return study.c.pk.in_(select(series.c.study_pk).where(cond))


def _sop_classes(value: str) -> ColumnElement[bool] | None:
    cond = condition(instance.c.sop_cuid, "UI", value)
    if cond is None:
        return None
    inner = select(series.c.study_pk).join(instance, instance.c.series_pk == series.c.pk)
    return study.c.pk.in_(inner.where(cond))


def _text(elem: DataElement) -> str:
    if elem.VR == "SQ":
        return ""
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def find(
    archive: Archive,
    identifier: Dataset,
    *,
    partition: Partition | str | None = None,
    root: Root = "study",
    limit: int | None = None,
    offset: int = 0,
    whole_header: bool = False,
    implicit: bool | None = None,
) -> Iterator[Dataset]:
    """The response identifiers for a C-FIND (or QIDO-RS) request, in a stable order.

    `whole_header` adds every attribute of the stored header that is not bulk data
    (QIDO-RS includefield=all at instance level). With `implicit` (the VR encoding of the
    association's Little Endian transfer syntax) an identifier made only of index values
    comes already encoded, for the DIMSE edge to send as it is."""
    level = query_level(identifier)
    if root == "study" and level == "PATIENT":
        raise InvalidDataset("PATIENT level is not part of the Study Root model")
    part = archive.resolve(partition)
    title, partition_pk = part.ae_title, part.pk
    table = _TABLE_OF[level]
    stmt = _base(level, partition_pk).where(*_conditions(identifier, level))
    stmt = stmt.order_by(table.c.pk).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    builder = _Builder(archive, identifier, level, title, whole_header, implicit)
    # The matches and the first batch of answers come from one statement: most queries have
    # a handful of matches, and each statement costs its building and a round trip. Only the
    # first batch's index values are kept; the others are read batch by batch.
    with db.read(archive.engine) as conn:
        pks: list[int] = []
        first: dict[int, dict[str, Any]] = {}
        for row in conn.execute(stmt.with_only_columns(*builder.columns())):
            pks.append(row.pk)
            if len(first) < BATCH:
                first[row.pk] = dict(row._mapping)
        answers = builder.build(conn, pks[:BATCH], first)
    yield from answers
    for start in range(BATCH, len(pks), BATCH):
        with db.read(archive.engine) as conn:
            answers = builder.build(conn, pks[start : start + BATCH])
        yield from answers


class _Builder:
    """Builds response identifiers for a batch of matching rows."""

    def __init__(
        self,
        archive: Archive,
        identifier: Dataset,
        level: Level,
        title: str,
        whole_header: bool = False,
        implicit: bool | None = None,
    ) -> None:
        self.whole_header = whole_header
        self.implicit = implicit
        self.archive = archive
        self.identifier = identifier
        self.level = level
        self.title = title
        self.depth = LEVELS.index(level)
        elements = [(e.tag, e.keyword, e.VR) for e in identifier]  # each keyword looked up once
        self.keywords = frozenset(keyword for _tag, keyword, _vr in elements)
        self.extra = [
            tag
            for tag, keyword, _vr in elements
            if keyword not in KEYS and keyword not in SPECIAL and tag.group not in (0, 2)
        ]
        self.asked = [
            (int(tag), keyword, vr)
            for tag, keyword, vr in elements
            if tag.group not in (0, 2) and keyword != "SpecificCharacterSet"
        ]

    def columns(self) -> list[Any]:
        """The matching rows' primary key (labelled `pk`) and the index values asked for."""
        asked = tuple(kw for kw in KEYS if kw in self.keywords)
        modalities = self.level == "STUDY" and "ModalitiesInStudy" in self.keywords
        return list(_columns(self.level, asked, modalities))

    def build(
        self, conn: Connection, pks: list[int], rows: dict[int, dict[str, Any]] | None = None
    ) -> list[Dataset]:
        """The answers for one batch of matching rows, in the order of `pks`; `rows`: their
        index values (`columns`) when already read."""
        if not pks:
            return []
        if rows is None:
            level_table = _TABLE_OF[self.level]
            cols = self.columns()
            stmt = select(*cols).where(_among(level_table.c.pk, pks))
            if self.level != "PATIENT":
                stmt = (
                    _base(self.level, self.archive.partition_pk(self.title))
                    .with_only_columns(*cols)
                    .where(_among(level_table.c.pk, pks))
                )
            rows = {r.pk: dict(r._mapping) for r in conn.execute(stmt)}
        if self.level == "STUDY" and "ModalitiesInStudy" in self.keywords:
            _fill_modalities(conn, rows)
        headers = self._headers(conn, pks) if self.extra or self.whole_header else {}
        computed = {pk: self._computed(conn, pk) for pk in pks}
        return [self._response(rows[pk], headers.get(pk), computed[pk]) for pk in pks if pk in rows]

    def _headers(self, conn: Any, pks: list[int]) -> dict[int, Dataset]:
        if self.level == "IMAGE":
            owner = instance.c.pk
        elif self.level == "SERIES":
            owner = instance.c.series_pk
        else:
            owner = series.c.study_pk if self.level == "STUDY" else study.c.patient_pk
        rep = (
            select(owner.label("owner"), func.min(instance.c.pk).label("ipk"))
            .select_from(instance)
            .join(series, series.c.pk == instance.c.series_pk)
            .join(study, study.c.pk == series.c.study_pk)
            .where(_among(owner, pks))
            .group_by(owner)
            .subquery()
        )
        rows = conn.execute(
            select(rep.c.owner, instance.c.header, file.c.transfer_syntax)
            .join(instance, instance.c.pk == rep.c.ipk)
            .join(file, file.c.instance_pk == instance.c.pk)
        ).all()
        out: dict[int, Dataset] = {}
        for owner_pk, header, syntax in rows:
            enc = Encoding.of(syntax)
            out[owner_pk] = decode_header(header, enc.implicit_vr, enc.little_endian)
        return out

    def _computed(self, conn: Any, pk: int) -> dict[str, Any]:
        want = self.keywords & SPECIAL
        out: dict[str, Any] = {}
        if self.level == "STUDY" and "SOPClassesInStudy" in want:
            out["SOPClassesInStudy"] = list(
                conn.scalars(
                    select(instance.c.sop_cuid)
                    .join(series, series.c.pk == instance.c.series_pk)
                    .where(series.c.study_pk == pk)
                    .distinct()
                    .order_by(instance.c.sop_cuid)
                )
            )
        if self.level == "PATIENT" and want & {
            "NumberOfPatientRelatedStudies",
            "NumberOfPatientRelatedSeries",
            "NumberOfPatientRelatedInstances",
        }:
            counts = conn.execute(
                select(
                    func.count(study.c.pk),
                    func.coalesce(func.sum(study.c.num_series), 0),
                    func.coalesce(func.sum(study.c.num_instances), 0),
                ).where(study.c.patient_pk == pk)
            ).one()
            out["NumberOfPatientRelatedStudies"] = counts[0]
            out["NumberOfPatientRelatedSeries"] = counts[1]
            out["NumberOfPatientRelatedInstances"] = counts[2]
        return out

    def _response(self, row: Any, header: Dataset | None, computed: dict[str, Any]) -> Dataset:
        values = self._values(row, header, computed)
        if self.whole_header and header is not None:
            asked = {tag for tag, _, _ in values}
            for elem in header:
                if elem.tag not in asked and elem.VR not in _BULK_VRS and elem.tag.group > 2:
                    values.append((elem.tag, elem.VR, elem))
        if _needs_utf8(values):
            values.append((SPECIFIC_CHARACTER_SET, "CS", "ISO_IR 192"))
        if self.implicit is not None:
            encoded = preencoded.identifier(values, self.implicit)
            if encoded is not None:
                return encoded
        ds = Dataset()
        for tag, vr, value in values:
            if isinstance(value, DataElement):
                ds[tag] = value
            else:
                ds.add(DataElement(tag, vr, value))
        return ds

    def _values(
        self, row: Any, header: Dataset | None, computed: dict[str, Any]
    ) -> list[preencoded.Element]:
        """(tag, VR, value) of each answered key, in the identifier's order; an element
        copied from the stored header is its value."""
        out: list[preencoded.Element] = []
        for tag, kw, vr in self.asked:
            if kw == "QueryRetrieveLevel":
                out.append((tag, "CS", self.level))
            elif kw in KEYS and kw in row:
                out.append(_valued(tag, _from_column(KEYS[kw], row[kw])))
            elif kw == "ModalitiesInStudy" and kw in row:
                out.append(_valued(tag, _multi(row[kw])))
            elif kw in computed:
                out.append(_valued(tag, _multi(computed[kw])))
            elif kw == "RetrieveAETitle":
                out.append((tag, "AE", self.title))
            elif kw == "InstanceAvailability":
                out.append((tag, "CS", "ONLINE"))
            elif header is not None and tag in header:
                out.append((tag, header[tag].VR, header[tag]))
            else:
                out.append((tag, vr, None))
        return out


@functools.lru_cache(maxsize=1024)
def _columns(level: Level, asked: tuple[str, ...], modalities: bool) -> tuple[Any, ...]:
    """The level's primary key and the labelled index columns of the `asked` keys (built
    once per level and set of keys)."""
    cols: list[Any] = [_TABLE_OF[level].c.pk]
    tables = LEVELS[: LEVELS.index(level) + 1]
    cols += [KEYS[kw].column.label(kw) for kw in asked if KEYS[kw].level in tables]
    if modalities:
        cols.append(study.c.modalities.label("ModalitiesInStudy"))
    return tuple(cols)


def _among(column: ColumnElement[Any], pks: list[int]) -> ColumnElement[bool]:
    """`column IN pks`, one key as `column = pk`: SQLAlchemy renders an expanding IN's
    statement again at every execution: a fifth of a one-study C-FIND's Python time."""
    return column == pks[0] if len(pks) == 1 else column.in_(pks)


def _fill_modalities(conn: Connection, rows: dict[int, dict[str, Any]]) -> None:
    """Modalities in Study, for the study rows whose stored list is empty, from their series."""
    empty = [pk for pk, row in rows.items() if not row["ModalitiesInStudy"]]
    if not empty:
        return
    found = conn.execute(
        select(series.c.study_pk, series.c.modality)
        .where(_among(series.c.study_pk, empty), series.c.modality != "")
        .group_by(series.c.study_pk, series.c.modality)
        .order_by(series.c.study_pk, func.min(series.c.pk))
    ).all()
    for study_pk, modality in found:
        listed = rows[study_pk]["ModalitiesInStudy"]
        rows[study_pk]["ModalitiesInStudy"] = f"{listed}\\{modality}" if listed else modality


def _from_column(key: Key, value: Any) -> Any:
    if value is None or value == "":
        return None
    if key.kind == "COUNT":
        return int(value)
    return _multi(value) if isinstance(value, str) else value


def _multi(value: Any) -> Any:
    if isinstance(value, str) and "\\" in value:
        return value.split("\\")
    return value if value not in ("", []) else None


def _valued(tag: int, value: Any) -> preencoded.Element:
    """A key's element with its dictionary VR; an IS value that is not a number is empty."""
    vr = dictionary_VR(tag)
    if vr == "IS" and isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        value = None
    return (tag, vr, value)


def _needs_utf8(values: list[preencoded.Element]) -> bool:
    for _, _, value in values:
        if isinstance(value, DataElement):
            value = value.value
        listed = isinstance(value, list) or type(value).__name__ == "MultiValue"
        items = value if listed else [value]
        if any(v is not None and not str(v).isascii() for v in items):
            return True
    return False


_LOCATED_COLUMNS = (
    instance.c.sop_cuid,
    instance.c.sop_iuid,
    file.c.transfer_syntax,
    filesystem.c.path,
    file.c.path,
    file.c.size,
    file.c.checksum,
)
# Per instance, the first copy is read: a readable filesystem before a write-only one, the
# primary before its mirror, then the fastest tier.
_COPY_ORDER = (
    filesystem.c.write_only,
    filesystem.c.mirror_of_pk.is_not(None),
    filesystem.c.tier,
    file.c.pk,
)


def locate(
    archive: Archive, identifier: Dataset, *, partition: Partition | str | None = None
) -> list[Located]:
    """Every stored object a C-MOVE / C-GET / WADO request names, in series/instance order;
    of several copies of an object, the one on a readable (not write-only) filesystem that is
    not a mirror, lowest tier; the other copies with the same checksum are its fallbacks
    (the mirror's before a write-only filesystem's)."""
    level = query_level(identifier)
    partition_pk = archive.resolve(partition).pk
    conds = _conditions(identifier, level)
    if level != "PATIENT" and not any(
        k in identifier and _text(identifier[k]).strip()
        for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "PatientID")
    ):
        raise InvalidDataset("a retrieve needs the unique key of its level")
    stmt = (
        select(*_LOCATED_COLUMNS)
        .select_from(INSTANCE_FILES.join(patient, patient.c.pk == study.c.patient_pk))
        .where(study.c.partition_pk == partition_pk, *conds)
        .order_by(series.c.pk, instance.c.pk, *_COPY_ORDER)
    )
    with db.read(archive.engine) as conn:
        rows = conn.execute(stmt).all()
    return _located(rows)


# One instance by its three UIDs (a WADO-RS instance, frame or rendered URL): its copies in
# reading order, as `locate` orders them.
_INSTANCE_COPIES = Prepared(
    select(*_LOCATED_COLUMNS)
    .select_from(INSTANCE_FILES)
    .where(
        instance.c.sop_iuid == bindparam("b_sop"),
        series.c.series_iuid == bindparam("b_series"),
        study.c.study_iuid == bindparam("b_study"),
        study.c.partition_pk == bindparam("b_part"),
    )
    .order_by(*_COPY_ORDER)
)


def locate_instance(
    archive: Archive, study_uid: str, series_uid: str, sop_uid: str, partition_pk: int
) -> Located | None:
    """The stored object with these UIDs in a partition (valid UIDs), as `locate` gives it;
    None when there is none. One statement on the driver: frames are asked for by the
    hundred per series."""
    values = {"b_sop": sop_uid, "b_series": series_uid, "b_study": study_uid}
    with db.read(archive.engine) as conn:
        rows = _INSTANCE_COPIES.all(conn, values | {"b_part": partition_pk})
    found = _located(rows)
    return found[0] if found else None


def _located(rows: Sequence[Sequence[Any]]) -> list[Located]:
    """Located objects from rows of `_LOCATED_COLUMNS` in reading order (several copies of
    an object in a row: the first is read, the others with its checksum are fallbacks)."""
    out: list[Located] = []
    seen: set[str] = set()
    first: tuple[str, str] | None = None  # (SOP Instance UID, checksum) of out[-1]
    fallbacks: list[Path] = []
    for cuid, iuid, syntax, root_path, rel_path, size, checksum in rows:
        if first is not None and first[0] == iuid:
            if checksum == first[1]:
                fallbacks.append(Path(root_path) / rel_path)
            continue
        if iuid in seen:
            continue
        seen.add(iuid)
        _settle(out, fallbacks)
        first, fallbacks = (iuid, checksum), []
        out.append(Located(cuid, iuid, syntax, Path(root_path) / rel_path, size))
    _settle(out, fallbacks)
    return out


def _settle(out: list[Located], fallbacks: list[Path]) -> None:
    """Give the last located object its fallbacks."""
    if out and fallbacks:
        out[-1] = replace(out[-1], fallbacks=tuple(fallbacks))
