"""Move a study's files to another filesystem, and purge copies that exist elsewhere.

Each step is safe to repeat: a copy lands atomically and is verified against the recorded
checksum before the index points at it; the old file is removed only after that commit, and a
rerun removes what a crash left behind."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, select, update
from sqlalchemy.orm import aliased

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, instance, series
from hounsfield.db.upsert import get_or_insert
from hounsfield.errors import ArchiveError, StorageFull
from hounsfield.storage.atomic import file_checksum, remove_quietly, write_atomic
from hounsfield.storage.tiers import Usage, list_filesystems

log = logging.getLogger(__name__)
CHUNK = 1 << 20


class CopyMismatch(ArchiveError):
    """A copied file does not match the checksum recorded for it."""


@dataclass(frozen=True)
class Moved:
    """What a migration did."""

    files: int
    bytes: int
    target: str


def _chunks(path: Path):  # type: ignore[no-untyped-def]
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def _copy_verified(src: Path, dst: Path, checksum: str, fsync: bool) -> None:
    if dst.exists() and file_checksum(dst) == checksum:
        return
    write_atomic(dst, _chunks(src), fsync=fsync)
    if file_checksum(dst) != checksum:
        remove_quietly(dst)
        raise CopyMismatch(f"copy of {src} to {dst} does not match its checksum")


def _remove_stale_temps(root: Path, folders: set[str]) -> None:
    """Temporary files a killed migration left in the study's folders on the target (only
    migrations, under the study lock, write there)."""
    for folder in folders:
        for temp in (root / folder).glob(".*.tmp"):
            temp.unlink(missing_ok=True)


def choose_target(usages: list[Usage], source_pk: int, size: int) -> Usage:
    """The writable filesystem of the next lower tier(s) below its high watermark with room."""
    source = next(u for u in usages if u.pk == source_pk)
    for u in sorted(usages, key=lambda u: (u.tier, u.pk)):
        if u.tier <= source.tier or not u.enabled or u.read_only or not u.total_bytes:
            continue
        if (u.used_bytes + size) * 100 <= u.total_bytes * u.high_watermark:
            return u
    raise StorageFull(f"no lower tier than {source.tier} has room for {size} bytes")


def _study_files(conn: object, study_pk: int, fs_pk: int) -> list[tuple[int, str, int, str]]:
    return conn.execute(  # type: ignore[attr-defined, no-any-return]
        select(file.c.pk, file.c.path, file.c.size, file.c.checksum)
        .join(instance, instance.c.pk == file.c.instance_pk)
        .join(series, series.c.pk == instance.c.series_pk)
        .where(series.c.study_pk == study_pk, file.c.filesystem_pk == fs_pk)
        .order_by(file.c.pk)
    ).all()


def migrate_study(
    archive: Archive, study_pk: int, source_pk: int, target_pk: int | None = None
) -> Moved:
    """Move every file of a study on `source_pk` to `target_pk` (or the next tier with room)."""
    usages = list_filesystems(archive.engine)
    paths = {u.pk: Path(u.path) for u in usages}
    with db.read(archive.engine) as conn:
        rows = _study_files(conn, study_pk, source_pk)
    size = sum(r[2] for r in rows)
    if target_pk is None:
        if not rows:
            return Moved(0, 0, "")
        target_pk = choose_target(usages, source_pk, size).pk
    source, target = paths[source_pk], paths[target_pk]
    _remove_stale_temps(target, {str(Path(r[1]).parent) for r in rows})
    for _pk, rel, _size, checksum in rows:
        _copy_verified(source / rel, target / rel, checksum, archive.settings.fsync)
    with db.write(archive.engine) as conn:
        if rows:
            conn.execute(
                update(file)
                .where(file.c.pk.in_([r[0] for r in rows]), file.c.filesystem_pk == source_pk)
                .values(filesystem_pk=target_pk)
            )
        moved = _study_files(conn, study_pk, target_pk)
    for _pk, rel, _size, _checksum in moved:
        if (source / rel).exists():  # also what an earlier, interrupted run left behind
            remove_quietly(source / rel)
    archive.filesystems.account(source_pk, -size)
    archive.filesystems.account(target_pk, size)
    log.info("moved %d files (%d bytes) of study %d to %s", len(rows), size, study_pk, target)
    return Moved(len(rows), size, str(target))


def copy_study(archive: Archive, study_pk: int, source_pk: int, target_pk: int) -> Moved:
    """Add a verified second copy of a study's files on `target_pk` (an archive copy that
    online retention may later rely on to purge the first)."""
    with db.read(archive.engine) as conn:
        rows = (
            conn.execute(
                select(file).where(
                    file.c.pk.in_([r[0] for r in _study_files(conn, study_pk, source_pk)])
                )
            )
            .mappings()
            .all()
        )
        roots = dict(conn.execute(select(filesystem.c.pk, filesystem.c.path)).all())
    source, target = Path(roots[source_pk]), Path(roots[target_pk])
    _remove_stale_temps(target, {str(Path(row["path"]).parent) for row in rows})
    for row in rows:
        _copy_verified(
            source / row["path"], target / row["path"], row["checksum"], archive.settings.fsync
        )
    with db.write(archive.engine) as conn:
        for row in rows:
            values = {
                k: row[k]
                for k in (
                    "instance_pk",
                    "size",
                    "transfer_syntax",
                    "checksum",
                    "created_at",
                )
            }
            get_or_insert(conn, file, {"filesystem_pk": target_pk, "path": row["path"]}, values)
    size = sum(r["size"] for r in rows)
    archive.filesystems.account(target_pk, size)
    return Moved(len(rows), size, str(target))


def purge_study(archive: Archive, study_pk: int, fs_pk: int) -> int:
    """Remove the copies of a study on `fs_pk` that have a verified copy on another filesystem.

    Returns the bytes freed; files without another copy stay where they are."""
    other = aliased(file)
    with db.read(archive.engine) as conn:
        rows = conn.execute(
            select(
                file.c.pk,
                file.c.path,
                file.c.size,
                filesystem.c.path,
                other.c.path,
                other.c.checksum,
            )
            .join(instance, instance.c.pk == file.c.instance_pk)
            .join(series, series.c.pk == instance.c.series_pk)
            .join(
                other,
                and_(other.c.instance_pk == file.c.instance_pk, other.c.filesystem_pk != fs_pk),
            )
            .join(filesystem, filesystem.c.pk == other.c.filesystem_pk)
            .where(series.c.study_pk == study_pk, file.c.filesystem_pk == fs_pk)
        ).all()
        root = Path(str(conn.scalar(select(filesystem.c.path).where(filesystem.c.pk == fs_pk))))
    verified: dict[int, tuple[str, int]] = {}
    for pk, rel, size, other_root, other_rel, other_sum in rows:
        copy = Path(other_root) / other_rel
        if pk not in verified and copy.exists() and file_checksum(copy) == other_sum:
            verified[pk] = (rel, size)
    if not verified:
        return 0
    with db.write(archive.engine) as conn:
        conn.execute(file.delete().where(file.c.pk.in_(list(verified))))
    freed = 0
    for rel, size in verified.values():
        remove_quietly(root / rel)
        freed += size
    archive.filesystems.account(fs_pk, -freed)
    return freed
