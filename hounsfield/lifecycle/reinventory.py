"""Reinventory: index the files found on a filesystem in place, from their self-describing paths."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from hounsfield.archive.context import Archive
from hounsfield.archive.metadata import invalidate
from hounsfield.catalog.index import StoredFile, find_existing, index_object
from hounsfield.catalog.parse import parse_header, required_uids
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem
from hounsfield.errors import ArchiveError
from hounsfield.storage.atomic import CHECKSUM, remove_quietly
from hounsfield.storage.filemeta import split_part10
from hounsfield.storage.layout import partition_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inventory:
    """What reinventory of one study folder did."""

    indexed: int = 0
    known: int = 0
    refused: int = 0
    removed: int = 0  # leftovers of writes whose object another write indexed


def partition_folders(archive: Archive) -> dict[str, str]:
    """Partition folder name -> AE title, for every partition."""
    return {partition_folder(t): t for t in archive.partition_titles()}


def study_folders(root: Path, partitions: dict[str, str]) -> list[str]:
    """Every `<partition>/<date>/<study>` folder under a filesystem root, sorted."""
    out: list[str] = []
    for part in sorted(partitions):
        base = root / part
        if not base.is_dir():
            continue
        for date in sorted(os.listdir(base)):
            if (base / date).is_dir():
                out.extend(
                    f"{part}/{date}/{s}"
                    for s in sorted(os.listdir(base / date))
                    if (base / date / s).is_dir()
                )
    return out


def reinventory_study(archive: Archive, fs_pk: int, folder: str) -> Inventory:
    """Index every file of one study folder that has no file row yet (idempotent)."""
    with db.read(archive.engine) as conn:
        root = Path(str(conn.scalar(select(filesystem.c.path).where(filesystem.c.pk == fs_pk))))
        known = set(
            conn.scalars(
                select(file.c.path).where(
                    file.c.filesystem_pk == fs_pk, file.c.path.like(f"{folder}/%")
                )
            )
        )
    title = partition_folders(archive).get(folder.split("/", 1)[0])
    if title is None:
        return Inventory()
    partition_pk = archive.partition_pk(title)
    indexed = refused = removed = 0
    study_uid = ""
    for dirpath, dirs, names in os.walk(root / folder):
        dirs.sort()
        for name in sorted(names):
            path = Path(dirpath) / name
            if name.startswith(".") and name.endswith(".tmp"):
                _sweep(path)
                continue
            if not name.endswith(".dcm") or name.startswith("."):
                continue
            rel = path.relative_to(root).as_posix()
            if rel in known:
                continue
            try:
                found = _index_file(archive, partition_pk, fs_pk, path, rel)
            except (ArchiveError, OSError) as exc:
                log.warning("reinventory skipped %s: %s", path, exc)
                refused += 1
                continue
            if found is not None:
                study_uid, indexed = found, indexed + 1
            elif _stale(path):
                remove_quietly(path)
                removed += 1
                log.info("reinventory removed %s: its object is indexed in another file", path)
    if indexed and study_uid:
        invalidate(archive, title, study_uid)
    return Inventory(indexed, len(known), refused, removed)


STALE_SECONDS = 3600.0


def _stale(path: Path) -> bool:
    """An hour old: no write that is still running can own it (a write renames its file into
    place and commits its index row within seconds, or removes the file)."""
    try:
        return time.time() - path.stat().st_mtime > STALE_SECONDS
    except FileNotFoundError:
        return False


def _sweep(path: Path) -> None:
    """Remove a temporary file an interrupted write left behind."""
    if _stale(path):
        path.unlink(missing_ok=True)
        log.info("reinventory removed the leftover temporary file %s", path)


def _index_file(
    archive: Archive, partition_pk: int, fs_pk: int, path: Path, rel: str
) -> str | None:
    """Index one file found in place; its Study Instance UID, or None when its SOP Instance
    is already indexed in another file."""
    raw = path.read_bytes()
    meta, data = split_part10(raw)
    syntax = str(meta.TransferSyntaxUID)
    parsed = parse_header(data, syntax)
    _cls, sop, study_uid, _series = required_uids(parsed)
    stored = StoredFile(fs_pk, rel, syntax, len(raw), hashlib.new(CHECKSUM, raw).hexdigest())
    source_ae = str(meta.get("SourceApplicationEntityTitle", "") or "")
    with db.write(archive.engine) as conn:
        if find_existing(conn, partition_pk, sop) is not None:
            return None  # a node died between renaming this file and indexing it
        index_object(conn, parsed, partition_pk, stored, source_ae, None)
    archive.filesystems.account(fs_pk, len(raw))
    return study_uid
