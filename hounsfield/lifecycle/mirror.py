"""Mirror a study: copy each of its files that its filesystem's mirror lacks to that mirror."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from hounsfield.archive.context import Archive
from hounsfield.catalog.copies import Copy, add_copy, copy_of
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, instance, series
from hounsfield.errors import ArchiveError
from hounsfield.lifecycle.copying import copy_verified
from hounsfield.storage.atomic import remove_quietly
from hounsfield.storage.mirrors import Mirror, mirrors

log = logging.getLogger(__name__)
BATCH = 50  # files copied between two index transactions


class MirrorIncomplete(ArchiveError):
    """Some files of a study could not be copied to their mirror (the item is retried)."""


@dataclass
class Mirrored:
    """What mirroring a study did."""

    files: int = 0
    bytes: int = 0
    gone: int = 0  # replaced or removed while being copied
    failed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"mirrored {self.files} files ({self.bytes} bytes), {self.gone} gone meanwhile"


def _missing(archive: Archive, study_pk: int) -> list[tuple[Copy, Path, Mirror]]:
    """The study's files on a filesystem with an active mirror that has no copy of their
    instance yet: (file row, its root, the mirror)."""
    with db.read(archive.engine) as conn:
        maps = {pk: m for pk, m in mirrors(conn).items() if m.active}
        rows = [
            copy_of(row)
            for row in conn.execute(
                select(file)
                .join(instance, instance.c.pk == file.c.instance_pk)
                .join(series, series.c.pk == instance.c.series_pk)
                .where(series.c.study_pk == study_pk)
                .order_by(file.c.pk)
            ).mappings()
        ]
        roots = dict(conn.execute(select(filesystem.c.pk, filesystem.c.path)).all())
    held = {(r.instance_pk, r.filesystem_pk) for r in rows}
    return [
        (r, Path(roots[r.filesystem_pk]), maps[r.filesystem_pk])
        for r in rows
        if r.filesystem_pk in maps and (r.instance_pk, maps[r.filesystem_pk].pk) not in held
    ]


def mirror_study(archive: Archive, study_pk: int) -> Mirrored:
    """Copy, verified against the recorded checksums, every file of the study that its
    filesystem's mirror lacks; record each copy only if its file is still the one indexed.
    MirrorIncomplete when a file could not be copied (after the others were)."""
    todo = _missing(archive, study_pk)
    fsync = archive.settings.fsync
    report = Mirrored()
    for start in range(0, len(todo), BATCH):
        copied: list[tuple[Copy, Mirror]] = []
        for row, root, mirror in todo[start : start + BATCH]:
            try:
                copy_verified(root / row.path, mirror.root / row.path, row.checksum, fsync)
            except (OSError, ArchiveError) as exc:
                log.warning("mirror copy of %s failed: %s", root / row.path, exc)
                report.failed.append(f"{row.path}: {exc}")
                continue
            copied.append((row, mirror))
        _record(archive, copied, report)
    if report.failed:
        raise MirrorIncomplete(
            f"{len(report.failed)} files not mirrored ({report}): " + "; ".join(report.failed[:3])
        )
    return report


def _record(archive: Archive, copied: list[tuple[Copy, Mirror]], report: Mirrored) -> None:
    """Index the copies whose primary file row is unchanged; remove the others' copies."""
    stale: list[tuple[Copy, Mirror]] = []
    with db.write(archive.engine) as conn:
        for row, mirror in copied:
            same = conn.scalar(
                select(file.c.pk).where(
                    file.c.pk == row.pk, file.c.path == row.path, file.c.checksum == row.checksum
                )
            )
            if same is None:
                stale.append((row, mirror))
                continue
            add_copy(conn, row, mirror.pk)
    for row, mirror in stale:
        remove_quietly(mirror.root / row.path)
    for row, mirror in copied:
        if (row, mirror) not in stale:
            report.files += 1
            report.bytes += row.size
            archive.filesystems.account(mirror.pk, row.size)
    report.gone += len(stale)
