"""Archive copies: a verified copy of a study's files on a filesystem of a given tier.

The copy is what online retention relies on before it purges the online files. Copying is
idempotent: instances that already have a file on the tier are left alone."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import file, instance, series
from hounsfield.errors import StorageFull
from hounsfield.lifecycle.migrate import Moved, copy_study
from hounsfield.storage.tiers import Usage, list_filesystems

log = logging.getLogger(__name__)


def default_tier(usages: Sequence[Usage]) -> int:
    """The highest tier that has an enabled, writable (possibly write-only) filesystem that is
    not a mirror."""
    tiers = [u.tier for u in usages if u.enabled and not u.read_only and not u.is_mirror]
    if not tiers:
        raise StorageFull("no enabled, writable filesystem to hold archive copies")
    return max(tiers)


def _has_room(u: Usage, size: int) -> bool:
    return bool(u.total_bytes) and (u.used_bytes + size) * 100 <= (u.total_bytes or 0) * (
        u.high_watermark
    )


def choose_copy_target(usages: Sequence[Usage], tier: int, held: set[int], size: int) -> Usage:
    """An enabled, writable filesystem (not a mirror) of `tier`: one in `held` (already holding
    part of the study) first, else the first with room below its high watermark for `size`
    bytes."""
    writable = [
        u for u in usages if u.tier == tier and u.enabled and not u.read_only and not u.is_mirror
    ]
    for u in sorted(writable, key=lambda u: (u.pk not in held, u.pk)):
        if u.pk in held or _has_room(u, size):
            return u
    raise StorageFull(f"no filesystem of tier {tier} has room for {size} bytes")


def copy_to_tier(archive: Archive, study_pk: int, tier: int | None = None) -> Moved:
    """Copy, verified against the recorded checksums, every instance of a study that has no
    file on a filesystem of `tier` (default: `default_tier`) there; reads each from a readable,
    lowest-tier copy (a mirror's only when there is no other). A mirror copy is no tier copy.
    Returns what was copied (nothing when the tier already holds it all)."""
    usages = list_filesystems(archive.engine)
    by_pk = {u.pk: u for u in usages}
    tier = tier or default_tier(usages)
    with db.read(archive.engine) as conn:
        rows = conn.execute(
            select(file.c.instance_pk, file.c.filesystem_pk, file.c.size)
            .join(instance, instance.c.pk == file.c.instance_pk)
            .join(series, series.c.pk == instance.c.series_pk)
            .where(series.c.study_pk == study_pk)
        ).all()
    on_tier = {fs for _i, fs, _s in rows if by_pk[fs].tier == tier and not by_pk[fs].is_mirror}
    copied = {i for i, fs, _s in rows if fs in on_tier}
    sources: dict[int, tuple[int, int]] = {}  # instance -> (filesystem, size) to read from
    for inst, fs, size in rows:
        if inst in copied:
            continue
        u = by_pk[fs]
        best = sources.get(inst)
        rank = (u.is_mirror, u.write_only, u.tier, u.pk)
        b = by_pk[best[0]] if best is not None else None
        if b is None or rank < (b.is_mirror, b.write_only, b.tier, b.pk):
            sources[inst] = (fs, size)
    if not sources:
        return Moved(0, 0, "")
    size = sum(s for _fs, s in sources.values())
    target = choose_copy_target(usages, tier, on_tier, size)
    files, total = 0, 0
    for source_pk in sorted({fs for fs, _s in sources.values()}):
        moved = copy_study(archive, study_pk, source_pk, target.pk)
        files, total = files + moved.files, total + moved.bytes
    log.info("copied %d files (%d bytes) of study %d to %s", files, total, study_pk, target.path)
    return Moved(files, total, target.path)
