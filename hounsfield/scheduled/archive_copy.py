"""Archive Copy: queue a `copy-study` item for each study whose rules made it eligible for an
archive copy and that has an instance without a file on the target tier yet."""

from __future__ import annotations

import json

from sqlalchemy import Connection, select
from sqlalchemy.orm import aliased

from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, instance, series, study, study_outcome
from hounsfield.errors import StorageFull
from hounsfield.lifecycle.archive_copy import default_tier
from hounsfield.scheduled.registry import Run, service
from hounsfield.storage.tiers import list_filesystems
from hounsfield.workqueue.items import now, study_key
from hounsfield.workqueue.queue import enqueue, given_up

ACTION = "archive-copy"
KIND = "copy-study"
BATCH = 500


def _uncopied(conn: Connection, params: str, tier: int) -> list[tuple[int, int, str]]:
    """Due studies of the rule parameters `params` with an instance that has no file on `tier`:
    their pk, partition and Study Instance UID, oldest eligibility first."""
    held, held_fs = aliased(file), aliased(filesystem)
    on_tier = (
        select(held.c.pk)
        .join(held_fs, held_fs.c.pk == held.c.filesystem_pk)
        .where(
            held.c.instance_pk == instance.c.pk,
            held_fs.c.tier == tier,
            held_fs.c.mirror_of_pk.is_(None),  # a mirror's copy is no tier copy
        )
        .exists()
    )
    missing = (
        select(instance.c.pk)
        .join(series, series.c.pk == instance.c.series_pk)
        .where(series.c.study_pk == study_outcome.c.study_pk, ~on_tier)
        .exists()
    )
    rows = conn.execute(
        select(study_outcome.c.study_pk, study.c.partition_pk, study.c.study_iuid)
        .join(study, study.c.pk == study_outcome.c.study_pk)
        .where(
            study_outcome.c.action == ACTION,
            study_outcome.c.params == params,
            study_outcome.c.eligible_at <= now(),
            missing,
        )
        .order_by(study_outcome.c.eligible_at, study_outcome.c.study_pk)
        .limit(BATCH)
    ).all()
    return [(int(pk), int(part), str(uid)) for pk, part, uid in rows]


@service("archive-copy", interval_seconds=300)
def archive_copy(run: Run) -> str:
    """Queue a verified copy to the archive tier (the rule's `tier`, default the highest with a
    writable filesystem) of every study eligible for `archive-copy` that is not fully there."""
    try:
        fallback: int | None = default_tier(list_filesystems(run.archive.engine))
    except StorageFull:
        fallback = None
    queued, skipped = 0, 0
    with db.write(run.archive.engine) as conn:
        failed = given_up(conn, KIND)
        variants = conn.scalars(
            select(study_outcome.c.params).where(study_outcome.c.action == ACTION).distinct()
        ).all()
        for params in variants:
            tier = json.loads(params).get("tier") or fallback
            if tier is None:
                continue
            for study_pk, part_pk, uid in _uncopied(conn, params, int(tier)):
                key = f"{KIND}:{study_pk}:{tier}"
                if key in failed:
                    skipped += 1
                    continue
                pk = enqueue(
                    conn,
                    KIND,
                    {"study_pk": study_pk, "tier": int(tier)},
                    study_key=study_key(part_pk, uid),
                    coalesce_key=key,
                )
                queued += pk is not None
    if fallback is None and variants:
        return f"queued {queued} studies for archive copy; no writable filesystem for the default"
    failed_note = f", {skipped} left failed" if skipped else ""
    return f"queued {queued} studies for archive copy{failed_note}"
