"""Move a study's files to another filesystem, and purge copies that exist elsewhere.

Each step is safe to repeat: a copy lands atomically and is verified against the recorded
checksum before the index points at it; the old file is removed only after that commit, and a
rerun removes what a crash left behind. Mirrors follow their filesystem: a moved file's mirror
copy moves to the target's mirror (or goes, when the target has none), a purged file's goes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, select, update
from sqlalchemy.orm import aliased

from hounsfield.archive.context import Archive
from hounsfield.catalog.copies import Copy, add_copy, copy_of, drop_copies
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, instance, series
from hounsfield.errors import InvalidDataset, StorageFull
from hounsfield.lifecycle.copying import CopyMismatch, copy_verified, remove_stale_temps
from hounsfield.storage.atomic import file_checksum, remove_quietly
from hounsfield.storage.mirrors import Mirror, mirrors
from hounsfield.storage.tiers import Usage, list_filesystems

__all__ = ["CopyMismatch", "Moved", "choose_target", "copy_study", "migrate_study", "purge_study"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Moved:
    """What a migration did."""

    files: int
    bytes: int
    target: str


def choose_target(usages: list[Usage], source_pk: int, size: int) -> Usage:
    """The writable filesystem (not a mirror) of the next lower tier(s) below its high
    watermark with room."""
    source = next(u for u in usages if u.pk == source_pk)
    for u in sorted(usages, key=lambda u: (u.tier, u.pk)):
        if u.tier <= source.tier or not u.enabled or u.read_only or not u.total_bytes:
            continue
        if u.is_mirror:
            continue
        if (u.used_bytes + size) * 100 <= u.total_bytes * u.high_watermark:
            return u
    raise StorageFull(f"no lower tier than {source.tier} has room for {size} bytes")


def _study_files(conn: Connection, study_pk: int, fs_pk: int) -> list[Copy]:
    rows = conn.execute(
        select(file)
        .join(instance, instance.c.pk == file.c.instance_pk)
        .join(series, series.c.pk == instance.c.series_pk)
        .where(series.c.study_pk == study_pk, file.c.filesystem_pk == fs_pk)
        .order_by(file.c.pk)
    ).mappings()
    return [copy_of(row) for row in rows]


def _active(mirror: Mirror | None) -> Mirror | None:
    return mirror if mirror is not None and mirror.active else None


def _no_mirror_target(maps: dict[int, Mirror], target_pk: int) -> None:
    if any(m.pk == target_pk for m in maps.values()):
        raise InvalidDataset("a mirror takes copies only of the filesystem it mirrors")


def _copy_all(source: Path, targets: list[Path], rows: list[Copy], fsync: bool) -> None:
    """Verified copies of `rows` from `source` on every target root."""
    for root in targets:
        remove_stale_temps(root, {str(Path(r.path).parent) for r in rows})
    for r in rows:
        for root in targets:
            copy_verified(source / r.path, root / r.path, r.checksum, fsync)


def migrate_study(
    archive: Archive, study_pk: int, source_pk: int, target_pk: int | None = None
) -> Moved:
    """Move every file of a study on `source_pk` to `target_pk` (or the next tier with room);
    their mirror copies follow (to the target's mirror, or are removed when it has none)."""
    usages = list_filesystems(archive.engine)
    paths = {u.pk: Path(u.path) for u in usages}
    with db.read(archive.engine) as conn:
        rows = _study_files(conn, study_pk, source_pk)
        maps = mirrors(conn)
    size = sum(r.size for r in rows)
    if target_pk is None:
        if not rows:
            return Moved(0, 0, "")
        target_pk = choose_target(usages, source_pk, size).pk
    _no_mirror_target(maps, target_pk)
    old_mirror, new_mirror = maps.get(source_pk), _active(maps.get(target_pk))
    source, target = paths[source_pk], paths[target_pk]
    targets = [target] + ([new_mirror.root] if new_mirror else [])
    _copy_all(source, targets, rows, archive.settings.fsync)
    with db.write(archive.engine) as conn:
        if rows:
            conn.execute(
                update(file)
                .where(file.c.pk.in_([r.pk for r in rows]), file.c.filesystem_pk == source_pk)
                .values(filesystem_pk=target_pk)
            )
        moved = _study_files(conn, study_pk, target_pk)
        instances = [r.instance_pk for r in moved]
        dropped = drop_copies(conn, instances, old_mirror.pk) if old_mirror else []
        if new_mirror:
            for r in moved:
                add_copy(conn, r, new_mirror.pk)
    for r in moved:  # also what an earlier, interrupted run left behind
        for root in (source, old_mirror.root if old_mirror else None):
            if root is not None and (root / r.path).exists():
                remove_quietly(root / r.path)
    if old_mirror:
        for gone in dropped:
            remove_quietly(old_mirror.root / gone.path)
    archive.filesystems.account(source_pk, -size)
    archive.filesystems.account(target_pk, size)
    if old_mirror:
        archive.filesystems.account(old_mirror.pk, -sum(d.size for d in dropped))
    if new_mirror:
        archive.filesystems.account(new_mirror.pk, size)
    log.info("moved %d files (%d bytes) of study %d to %s", len(rows), size, study_pk, target)
    return Moved(len(rows), size, str(target))


def copy_study(archive: Archive, study_pk: int, source_pk: int, target_pk: int) -> Moved:
    """Add a verified second copy of a study's files on `target_pk` (an archive copy that
    online retention may later rely on to purge the first), and on its mirror if it has one."""
    with db.read(archive.engine) as conn:
        rows = _study_files(conn, study_pk, source_pk)
        roots = dict(conn.execute(select(filesystem.c.pk, filesystem.c.path)).all())
        maps = mirrors(conn)
    _no_mirror_target(maps, target_pk)
    mirror = _active(maps.get(target_pk))
    source, target = Path(roots[source_pk]), Path(roots[target_pk])
    _copy_all(source, [target] + ([mirror.root] if mirror else []), rows, archive.settings.fsync)
    with db.write(archive.engine) as conn:
        for row in rows:
            add_copy(conn, row, target_pk)
            if mirror:
                add_copy(conn, row, mirror.pk)
    size = sum(r.size for r in rows)
    archive.filesystems.account(target_pk, size)
    if mirror:
        archive.filesystems.account(mirror.pk, size)
    return Moved(len(rows), size, str(target))


def _elsewhere(conn: Connection, study_pk: int, fs_pk: int) -> list[Any]:
    """The study's files on `fs_pk` joined with their copies on other filesystems that are
    not mirrors: (file pk, instance pk, path, size, copy's root, copy's path, its checksum)."""
    other = aliased(file)
    return conn.execute(  # type: ignore[return-value]
        select(
            file.c.pk,
            file.c.instance_pk,
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
        .where(
            series.c.study_pk == study_pk,
            file.c.filesystem_pk == fs_pk,
            filesystem.c.mirror_of_pk.is_(None),
        )
    ).all()


def purge_study(archive: Archive, study_pk: int, fs_pk: int) -> int:
    """Remove the copies of a study on `fs_pk` (and their mirror copies) that have a verified
    copy on another filesystem that is not a mirror.

    Returns the bytes freed on `fs_pk`; files without another copy stay where they are."""
    with db.read(archive.engine) as conn:
        rows = _elsewhere(conn, study_pk, fs_pk)
        root = Path(str(conn.scalar(select(filesystem.c.path).where(filesystem.c.pk == fs_pk))))
        maps = mirrors(conn)
    if any(m.pk == fs_pk for m in maps.values()):
        return 0  # a mirror follows its filesystem: never purged on its own
    verified: dict[int, tuple[int, str, int]] = {}
    for pk, inst, rel, size, other_root, other_rel, other_sum in rows:
        copy = Path(other_root) / other_rel
        if pk not in verified and copy.exists() and file_checksum(copy) == other_sum:
            verified[pk] = (inst, rel, size)
    if not verified:
        return 0
    mirror = maps.get(fs_pk)
    with db.write(archive.engine) as conn:
        conn.execute(file.delete().where(file.c.pk.in_(list(verified))))
        instances = [inst for inst, _rel, _size in verified.values()]
        dropped = drop_copies(conn, instances, mirror.pk) if mirror else []
    freed = 0
    for _inst, rel, size in verified.values():
        remove_quietly(root / rel)
        freed += size
    if mirror:
        for gone in dropped:
            remove_quietly(mirror.root / gone.path)
    archive.filesystems.account(fs_pk, -freed)
    if mirror:
        archive.filesystems.account(mirror.pk, -sum(d.size for d in dropped))
    return freed
