"""Work an operator asks for on one study: migrate, compress, reprocess (queued work items)."""

from __future__ import annotations

from sqlalchemy import select

from hounsfield.archive.context import Archive
from hounsfield.archive.study_files import study_files, study_pk
from hounsfield.catalog.partitions import Partition
from hounsfield.db import engine as db
from hounsfield.db.tables import filesystem
from hounsfield.errors import InvalidDataset, NotFound
from hounsfield.imaging.compress import LOSSLESS
from hounsfield.workqueue import wake
from hounsfield.workqueue.study import request_compression, request_migration, request_processing


def _filesystem_pk(archive: Archive, path: str) -> int:
    with db.read(archive.engine) as conn:
        pk = conn.scalar(select(filesystem.c.pk).where(filesystem.c.path == path))
    if pk is None:
        raise NotFound(f"no filesystem at {path}")
    return int(pk)


def queue_migration(
    archive: Archive,
    partition: Partition | str | None,
    uid: str,
    source: int | str | None = None,
    target: int | str | None = None,
) -> int | None:
    """Move a study's files off filesystem `source` (pk or path; by default the one filesystem
    holding them) to `target` (pk or path; by default the next tier with room), as a
    migrate-study item; its pk, or None when one already waits."""
    part = archive.resolve(partition)
    pk = study_pk(archive, part, uid)
    if source is None:
        holding = {f.filesystem_pk for f in study_files(archive, pk) if not f.mirror}
        if len(holding) != 1:
            raise InvalidDataset("the study's files lie on several filesystems: name the source")
        source = holding.pop()
    source_pk = _filesystem_pk(archive, source) if isinstance(source, str) else source
    target_pk = _filesystem_pk(archive, target) if isinstance(target, str) else target
    with db.write(archive.engine) as conn:
        queued = request_migration(conn, part.pk, uid, pk, source_pk, target_pk)
    wake.ring()
    return queued


def queue_compression(
    archive: Archive, partition: Partition | str | None, uid: str, syntax: str
) -> int | None:
    """Compress a study losslessly with `syntax` as a compress-study item; its pk, or None
    when one already waits."""
    if syntax not in LOSSLESS:
        raise InvalidDataset(f"lossless compression is one of {', '.join(LOSSLESS)}")
    part = archive.resolve(partition)
    pk = study_pk(archive, part, uid)
    with db.write(archive.engine) as conn:
        queued = request_compression(
            conn, part.pk, uid, pk, "lossless-compress", {"syntax": syntax}
        )
    wake.ring()
    return queued


def queue_reprocessing(archive: Archive, partition: Partition | str | None, uid: str) -> int | None:
    """Apply the rules again, forward and rebuild the metadata of a study (process-study)."""
    part = archive.resolve(partition)
    study_pk(archive, part, uid)
    with db.write(archive.engine) as conn:
        queued = request_processing(conn, part.pk, part.ae_title, uid)
    wake.ring()
    return queued
