"""Storage commitment: prove each referenced object is stored and intact."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from hounsfield.archive.context import Archive
from hounsfield.archive.joins import INSTANCE_FILES
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, instance, study
from hounsfield.storage.files import file_checksum

log = logging.getLogger(__name__)

NO_SUCH_OBJECT = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119
PROCESSING_FAILURE = 0x0110


@dataclass
class Commitment:
    """The verdict for every reference of one commitment request."""

    success: list[tuple[str, str]] = field(default_factory=list)
    failure: list[tuple[str, str, int]] = field(default_factory=list)


def verify(
    archive: Archive, refs: list[tuple[str, str]], partition: str | None = None
) -> Commitment:
    """Check that each (SOP class, SOP instance) is indexed and its file matches its checksum."""
    partition_pk = archive.partition_pk(partition or archive.default_partition)
    wanted = [iuid for _, iuid in refs]
    found: dict[str, tuple[str, Path, str]] = {}
    with db.read(archive.engine) as conn:
        for start in range(0, len(wanted), 500):
            rows = conn.execute(
                select(
                    instance.c.sop_iuid,
                    instance.c.sop_cuid,
                    filesystem.c.path,
                    file.c.path,
                    file.c.checksum,
                )
                .select_from(INSTANCE_FILES)
                .where(
                    study.c.partition_pk == partition_pk,
                    instance.c.sop_iuid.in_(wanted[start : start + 500]),
                )
            ).all()
            for iuid, cuid, root, rel, checksum in rows:
                found[iuid] = (cuid, Path(root) / rel, checksum)
    out = Commitment()
    for cuid, iuid in refs:
        reason = _check(found.get(iuid), cuid)
        if reason is None:
            out.success.append((cuid, iuid))
        else:
            log.warning("storage commitment failed for %s: 0x%04X", iuid, reason)
            out.failure.append((cuid, iuid, reason))
    return out


def _check(found: tuple[str, Path, str] | None, cuid: str) -> int | None:
    if found is None:
        return NO_SUCH_OBJECT
    stored_class, path, checksum = found
    if stored_class != cuid:
        return CLASS_INSTANCE_CONFLICT
    try:
        if file_checksum(path) != checksum:
            return PROCESSING_FAILURE
    except OSError:
        return PROCESSING_FAILURE
    return None
