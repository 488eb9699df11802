"""Repair a stored file from a good copy of the same object, its mirror counterpart first."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import aliased

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem
from hounsfield.errors import ArchiveError
from hounsfield.lifecycle.copying import copy_verified
from hounsfield.storage.atomic import file_checksum

log = logging.getLogger(__name__)
State = Literal["good", "bad", "missing"]


def state_of(path: Path, size: int, checksum: str) -> State:
    """Whether a stored file is there with the indexed size and checksum."""
    try:
        if path.stat().st_size != size:
            return "bad"
        return "good" if file_checksum(path) == checksum else "bad"
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError:
        return "bad"


def copies(
    archive: Archive, file_pk: int, instance_pk: int, filesystem_pk: int, checksum: str
) -> list[Path]:
    """The other copies of an object with the same content as file row `file_pk`: its mirror
    counterpart first (the filesystem's mirror, or the filesystem a mirror mirrors), then by
    tier."""
    this = aliased(filesystem)
    counterpart = or_(
        filesystem.c.mirror_of_pk == filesystem_pk, filesystem.c.pk == this.c.mirror_of_pk
    )
    with db.read(archive.engine) as conn:
        rows = conn.execute(
            select(filesystem.c.path, file.c.path)
            .select_from(file)
            .join(filesystem, filesystem.c.pk == file.c.filesystem_pk)
            .join(this, this.c.pk == filesystem_pk)
            .where(
                and_(
                    file.c.instance_pk == instance_pk,
                    file.c.pk != file_pk,
                    file.c.checksum == checksum,
                )
            )
            .order_by(counterpart.desc(), filesystem.c.tier, file.c.pk)
        ).all()
    return [Path(root) / rel for root, rel in rows]


def restore(
    archive: Archive,
    target: Path,
    file_pk: int,
    instance_pk: int,
    filesystem_pk: int,
    size: int,
    checksum: str,
) -> Path | None:
    """Put a good copy of the object over `target` (file row `file_pk`), atomically and
    verified; the copy used, or None when no copy would do."""
    for source in copies(archive, file_pk, instance_pk, filesystem_pk, checksum):
        if state_of(source, size, checksum) != "good":
            continue
        try:
            copy_verified(source, target, checksum, archive.settings.fsync)
        except (OSError, ArchiveError) as exc:
            log.warning("repairing %s from %s failed: %s", target, source, exc)
            continue
        return source
    return None
