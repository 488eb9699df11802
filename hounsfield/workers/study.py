"""Process a study once it has settled: apply the server rules, forward, rebuild metadata."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from hounsfield.archive import metadata
from hounsfield.db import engine as db
from hounsfield.db.tables import study
from hounsfield.rules.saved import apply_rules
from hounsfield.sites.forward import route_study
from hounsfield.workers.registry import register
from hounsfield.workqueue.items import Done, Later, Status, WorkItem, now, utc
from hounsfield.workqueue.kinds import PROCESS_STUDY

if TYPE_CHECKING:
    from hounsfield.archive.context import Archive


@register(PROCESS_STUDY)
def process_study(archive: Archive, item: WorkItem) -> Done | Later:
    """Wait for the settle time since the study's last change, then apply rules (idempotent)."""
    title, uid = item.payload["partition"], item.payload["study"]
    with db.read(archive.engine) as conn:
        row = conn.execute(
            select(study.c.pk, study.c.updated_at).where(
                study.c.partition_pk == archive.partition_pk(title), study.c.study_iuid == uid
            )
        ).first()
    if row is None:
        return Done("study no longer stored")
    updated = utc(row[1]) or now()
    quiet_at = updated + timedelta(seconds=archive.settings.study_settle_seconds)
    if quiet_at > now():
        return Later(quiet_at, "waiting for the study to settle", Status.IDLE)
    outcome = apply_rules(archive.engine, row[0])
    forwarded = route_study(archive, title, uid, "settled")
    count = metadata.rebuild(archive, uid, partition=title)
    actions = ", ".join(f"{e.action} from {e.at:%Y-%m-%d}" for e in outcome) or "no actions"
    if forwarded:
        actions += f"; forward to {', '.join(forwarded)}"
    return Done(f"{count} instances; {actions}")
