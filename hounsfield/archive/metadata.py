"""The per-study metadata document: DICOM JSON of each instance, gzip'd on disk, not in the DB.

A document is one file, written atomically: its first line says which index version it was
built from and which instance each following line is. Builders in several processes or nodes
may race; each writes a complete file of its own, and a reader uses a document only when its
version is the index's current one, so no lock is needed."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from sqlalchemy import select

from hounsfield.archive.context import Archive
from hounsfield.archive.file_cache import FileCache, identity
from hounsfield.catalog.dicomjson import Unusual, header_json
from hounsfield.catalog.parse import Encoding, decode_header
from hounsfield.catalog.partitions import Partition
from hounsfield.db import engine as db
from hounsfield.db.tables import file, instance, series, study
from hounsfield.errors import NotFound
from hounsfield.storage.atomic import write_atomic
from hounsfield.storage.layout import partition_folder
from hounsfield.uids import check_uid

log = logging.getLogger(__name__)
_BUILD_LOCKS = [threading.Lock() for _ in range(64)]
BULK_THRESHOLD = 1024
BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
ENCAPSULATED_PREFIX = "1.2.840.10008.1.2.4"
# Bulk data URIs are kept relative to the DICOMweb root in the document and
# made absolute when served; this is the exact byte pattern that marks them.
RELATIVE_URI = b'"BulkDataURI":"studies/'
# What a document holds: a document of another format is rebuilt on first use.
FORMAT = 2
# Pixel Spacing and Imager Pixel Spacing: a value that is not two positive numbers (0\0 in some
# radiographs) describes no geometry, and a viewer that builds one from it draws nothing (OHIF:
# a black viewport and thumbnail). The document leaves it out, as if unknown; the stored file
# keeps it.
SPACINGS = ("00280030", "00181164")
# Documents read lately, per process: a series' metadata is asked for by every viewer that
# opens it, and reading it again means decompressing and splitting the whole study's.
CACHE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, eq=False)
class Document:
    """A study's metadata: one compact DICOM JSON object per line, and who each line is;
    `memo` keeps small bodies made from it (as long as the document is kept)."""

    lines: list[bytes]
    index: list[tuple[str, str]]  # (SeriesInstanceUID, SOPInstanceUID) per line
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        """About the bytes it holds."""
        return sum(len(line) + 120 for line in self.lines)

    def select(self, series_uid: str | None = None, sop_uid: str | None = None) -> list[bytes]:
        """The lines of one series or one instance (all lines when neither is given)."""
        return [
            line
            for line, (se, sop) in zip(self.lines, self.index, strict=True)
            if (series_uid is None or se == series_uid) and (sop_uid is None or sop == sop_uid)
        ]


def folder(archive: Archive, partition: str) -> Path:
    """Where a partition's study metadata documents live."""
    return archive.settings.data_dir / "metadata" / partition_folder(partition)


def _path(archive: Archive, partition: str, study_uid: str) -> Path:
    base = folder(archive, partition) / check_uid(study_uid, "StudyInstanceUID")
    return base.with_suffix(base.suffix + ".json.gz")


def invalidate(archive: Archive, partition: str, study_uid: str) -> None:
    """Drop a study's document (one unlink; the next read rebuilds it)."""
    try:
        os.unlink(_path(archive, partition, study_uid))
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot mark metadata of study %s stale: %s", study_uid, exc)


def load(archive: Archive, study_uid: str, *, partition: Partition | str | None = None) -> Document:
    """The current document of a study, rebuilt first when the index has changed since."""
    part = archive.resolve(partition)
    version = _version(archive, part.pk, study_uid)
    path = _path(archive, part.ae_title, study_uid)
    cached = _CACHE.get(path, version) or _read(path, version)
    if cached is not None:
        return cached
    with _building(part.pk, study_uid):  # a build running in this process is waited for
        return _read(path, version) or _build(archive, part.ae_title, study_uid, version)


def rebuild(archive: Archive, study_uid: str, *, partition: Partition | str | None = None) -> int:
    """Rebuild one study's document from the index; returns its instance count."""
    part = archive.resolve(partition)
    version = _version(archive, part.pk, study_uid)
    with _building(part.pk, study_uid):
        return len(_build(archive, part.ae_title, study_uid, version).lines)


_CACHE: FileCache[Document] = FileCache(CACHE_BYTES)


def _building(partition_pk: int, study_uid: str) -> threading.Lock:
    """One builder per study in this process: a request that comes while the study's
    processing rebuilds its document waits and reuses it instead of building it again.
    (Correctness across processes and nodes does not depend on it: see the module text.)"""
    return _BUILD_LOCKS[hash((partition_pk, study_uid)) % len(_BUILD_LOCKS)]


def studies(archive: Archive, *, partition: Partition | str | None = None) -> list[str]:
    """Every Study Instance UID of a partition, oldest first."""
    partition_pk = archive.resolve(partition).pk
    with db.read(archive.engine) as conn:
        return list(
            conn.scalars(
                select(study.c.study_iuid)
                .where(study.c.partition_pk == partition_pk)
                .order_by(study.c.pk)
            )
        )


def _version(archive: Archive, partition_pk: int, study_uid: str) -> list[Any]:
    check_uid(study_uid, "StudyInstanceUID")
    with db.read(archive.engine) as conn:
        row = conn.execute(
            select(study.c.pk, study.c.num_instances, study.c.size_bytes, study.c.updated_at).where(
                study.c.partition_pk == partition_pk, study.c.study_iuid == study_uid
            )
        ).first()
    if row is None:
        raise NotFound(f"no study {study_uid}")
    return [row[0], row[1], row[2], row[3].isoformat()]


def _read(path: Path, version: list[Any]) -> Document | None:
    try:
        with open(path, "rb") as fh:
            ident = identity(os.fstat(fh.fileno()))
            body = gzip.decompress(fh.read())
        head, _, body = body.partition(b"\n")
        meta = json.loads(head)
        if meta.get("version") != version or meta.get("format") != FORMAT:
            return None
    except (OSError, ValueError, EOFError):
        return None
    lines = body.split(b"\n")[1:-1]
    index = [(se, sop) for se, sop in meta["instances"]]
    if len(lines) != len(index):
        return None
    document = Document([line.rstrip(b",") for line in lines], index)
    _CACHE.put(path, ident, version, document, document.size)
    return document


def _build(archive: Archive, partition: str, study_uid: str, version: list[Any]) -> Document:
    study_pk = version[0]
    with db.read(archive.engine) as conn:
        rows = conn.execute(
            select(
                series.c.series_iuid,
                instance.c.sop_iuid,
                instance.c.header,
                file.c.transfer_syntax,
            )
            .select_from(instance)
            .join(series, series.c.pk == instance.c.series_pk)
            .join(file, file.c.instance_pk == instance.c.pk)
            .where(series.c.study_pk == study_pk)
            .order_by(series.c.pk, instance.c.pk, file.c.pk)
        ).all()
    lines: list[bytes] = []
    index: list[tuple[str, str]] = []
    seen: set[str] = set()
    for series_uid, sop_uid, header, syntax in rows:
        if sop_uid in seen:
            continue
        seen.add(sop_uid)
        prefix = f"studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/bulkdata/"
        try:
            obj = instance_json(header, syntax, prefix)
        except Exception as exc:  # an unreadable header still lists the instance
            log.warning("metadata of %s limited to its UIDs: %s", sop_uid, exc)
            obj = _minimal(study_uid, series_uid, sop_uid, syntax)
        lines.append(_line(obj))
        index.append((series_uid, sop_uid))
    head = json.dumps({"version": version, "format": FORMAT, "instances": index}).encode()
    body = head + b"\n[\n" + b",\n".join(lines) + b"\n]"
    path = _path(archive, partition, study_uid)
    write_atomic(path, (gzip.compress(body, compresslevel=1),), fsync=archive.settings.fsync)
    document = Document(lines, index)
    with contextlib.suppress(OSError):  # gone already: the next reader builds it again
        # Another process's build may have replaced it since: that file's version is
        # checked against the index as this one's is.
        _CACHE.put(path, identity(os.stat(path)), version, document, document.size)
    return document


def _line(obj: dict[str, Any]) -> bytes:
    """One compact JSON line (orjson; the standard library for what orjson refuses, such as
    an integer beyond 64 bits in a damaged header)."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _minimal(study_uid: str, series_uid: str, sop_uid: str, syntax: str) -> dict[str, Any]:
    values = {"00020010": syntax, "0020000D": study_uid, "0020000E": series_uid}
    values["00080018"] = sop_uid
    return {tag: {"vr": "UI", "Value": [v]} for tag, v in values.items()}


def instance_json(header: bytes, transfer_syntax: str, bulk_prefix: str) -> dict[str, Any]:
    """One instance's DICOM JSON from its stored header, large values as BulkDataURIs.

    An explicit-VR header is converted straight from its bytes (about ten times faster than
    through a pydicom Dataset, the same JSON); pydicom reads any other."""
    enc = Encoding.of(transfer_syntax)
    out: dict[str, Any] = {"00020010": {"vr": "UI", "Value": [transfer_syntax]}}
    try:
        if enc.implicit_vr:
            raise Unusual("implicit VR: the dictionary names each VR")
        out.update(header_json(header, enc.little_endian, bulk_prefix, BULK_THRESHOLD))
    except (Unusual, struct.error):
        out.update(_pydicom_json(header, enc, bulk_prefix))
    for tag in SPACINGS:
        if tag in out and not _spacing(out[tag].get("Value")):
            del out[tag]
    if "00280010" in out and "00280011" in out:  # Rows and Columns
        compressed = transfer_syntax.startswith(ENCAPSULATED_PREFIX)
        bits = (out.get("00280100", {}).get("Value") or [None])[0]  # BitsAllocated
        vr = "OB" if compressed or int(bits or 8) <= 8 else "OW"
        out["7FE00010"] = {"vr": vr, "BulkDataURI": bulk_prefix + "7FE00010"}
    return out


def _pydicom_json(header: bytes, enc: Encoding, bulk_prefix: str) -> dict[str, Any]:
    """The header's DICOM JSON through a pydicom Dataset."""
    ds = decode_header(header, enc.implicit_vr, enc.little_endian)
    paths = dict(_bulk_paths(ds, ""))

    def handler(elem: DataElement) -> str:
        return bulk_prefix + paths.get(id(elem), f"{elem.tag:08X}")

    out: dict[str, Any] = {}
    for elem in ds:
        try:
            out[f"{elem.tag:08X}"] = elem.to_json_dict(handler, BULK_THRESHOLD)
        except Exception as exc:  # a corrupt value drops that attribute only
            log.debug("attribute %s left out of metadata: %s", elem.tag, exc)
    return out


def _spacing(values: Any) -> bool:
    """Whether a spacing value is two positive numbers (row and column spacing)."""
    return (
        isinstance(values, list)
        and len(values) == 2
        and all(isinstance(v, int | float) and v > 0 for v in values)
    )


def _bulk_paths(ds: Dataset, prefix: str) -> Iterator[tuple[int, str]]:
    """Map each large binary element (by identity) to its bulkdata path below the instance."""
    for elem in ds:
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or []):
                yield from _bulk_paths(item, f"{prefix}{elem.tag:08X}/{i}/")
        elif elem.VR in BULK_VRS:
            yield id(elem), f"{prefix}{elem.tag:08X}"
