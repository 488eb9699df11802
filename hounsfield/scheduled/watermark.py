"""Filesystem Watermark Check: above the high watermark, schedule migrate, delete, then purge."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, case, func, select
from sqlalchemy.orm import aliased

from hounsfield.alerts import raise_alert
from hounsfield.db import engine as db
from hounsfield.db.tables import (
    file,
    filesystem,
    forward,
    instance,
    series,
    study,
    study_outcome,
    work_item,
)
from hounsfield.scheduled.registry import Run, service
from hounsfield.storage.tiers import Usage, list_filesystems
from hounsfield.workqueue.items import WAITING, Status, now, study_key
from hounsfield.workqueue.queue import enqueue

# In this order: what a cheaper tier can take first, then what may go, then online copies.
STEPS = (
    ("tier1-retention", "migrate-study"),
    ("delete", "delete-study"),
    ("online-retention", "purge-study"),
)
KINDS = tuple(kind for _action, kind in STEPS)  # delete-study also frees proven studies


@dataclass
class Plan:
    """What the check scheduled for one filesystem."""

    path: str
    to_free: int
    already_scheduled: int = 0
    scheduled: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (items, bytes)

    @property
    def planned(self) -> int:
        """Bytes the new and earlier items will free."""
        return self.already_scheduled + sum(b for _n, b in self.scheduled.values())

    def __str__(self) -> str:
        parts = [f"{k} {n} ({b} B)" for k, (n, b) in self.scheduled.items() if n]
        done = ", ".join(parts) or "nothing new"
        return f"{self.path}: {self.to_free} B to free, {self.already_scheduled} B pending, {done}"


def _pending(conn: Connection, fs_pk: int) -> tuple[int, set[int]]:
    """Bytes that unfinished storage items on this filesystem will free, and their studies."""
    rows = conn.execute(
        select(work_item.c.payload).where(
            work_item.c.kind.in_(KINDS),
            work_item.c.status.in_((*WAITING, Status.IN_PROGRESS.value)),
        )
    ).scalars()
    total, studies = 0, set()
    for payload in rows:
        data: dict[str, Any] = json.loads(payload)
        if data.get("filesystem") == fs_pk:
            total += int(data.get("bytes", 0))
            studies.add(int(data["study_pk"]))
    return total, studies


def _candidates(conn: Connection, action: str, fs_pk: int) -> list[tuple[int, int, str, str]]:
    """Eligible studies with bytes on `fs_pk`: pk, bytes, study key and the kind of item
    that frees them. For online retention: bytes that have a copy on another filesystem
    (purge-study), or, when the rule requires that destinations committed the study, the
    whole study once every one of them has (delete-study)."""
    size = func.sum(file.c.size)
    other, other_fs = aliased(file), aliased(filesystem)
    copies = (
        select(other.c.pk)
        .join(other_fs, other_fs.c.pk == other.c.filesystem_pk)
        .where(
            and_(other.c.instance_pk == file.c.instance_pk, other.c.filesystem_pk != fs_pk),
            other_fs.c.mirror_of_pk.is_(None),  # a mirror's copy goes with the purged one
        )
        .exists()
    )
    stmt = (
        select(
            study_outcome.c.study_pk,
            size,
            study.c.partition_pk,
            study.c.study_iuid,
            study_outcome.c.params,
            func.max(case((copies, 1), else_=0)),
            study.c.num_instances,
        )
        .join(study, study.c.pk == study_outcome.c.study_pk)
        .join(series, series.c.study_pk == study_outcome.c.study_pk)
        .join(instance, instance.c.series_pk == series.c.pk)
        .join(file, file.c.instance_pk == instance.c.pk)
        .where(
            study_outcome.c.action == action,
            study_outcome.c.eligible_at <= now(),
            file.c.filesystem_pk == fs_pk,
        )
        .group_by(
            study_outcome.c.study_pk,
            study_outcome.c.eligible_at,
            study_outcome.c.params,
            study.c.partition_pk,
            study.c.study_iuid,
            study.c.num_instances,
        )
        .order_by(study_outcome.c.eligible_at, study_outcome.c.study_pk)
    )
    kind = dict(STEPS)[action]
    out = []
    for pk, n, part, uid, params, has_copies, count in conn.execute(stmt).all():
        if action == "online-retention":
            required = json.loads(params or "{}").get("require_committed") or []
            if required:
                if not proven(conn, int(part), str(uid), list(required), int(count)):
                    continue
                out.append((int(pk), int(n), study_key(part, uid), "delete-study"))
                continue
            if not has_copies:
                continue
        out.append((int(pk), int(n), study_key(part, uid), kind))
    return out


def proven(conn: Connection, partition_pk: int, study_uid: str, to: list[str], count: int) -> bool:
    """Whether every destination in `to` committed all `count` instances of the study."""
    rows = conn.execute(
        select(forward.c.destination, forward.c.committed).where(
            forward.c.partition_pk == partition_pk,
            forward.c.study_iuid == study_uid,
            forward.c.series_iuid == "",
            forward.c.state == "committed",
            forward.c.destination.in_(to),
        )
    ).all()
    done = {str(dest) for dest, committed in rows if int(committed) >= count}
    return done >= set(to)


def plan_filesystem(conn: Connection, fs: Usage, usages: list[Usage]) -> Plan:
    """Schedule items for one filesystem above its high watermark, in the caller's transaction."""
    plan = Plan(fs.path, fs.bytes_to_low)
    plan.already_scheduled, taken = _pending(conn, fs.pk)
    lower = [
        u for u in usages if u.tier > fs.tier and u.enabled and not u.read_only and not u.is_mirror
    ]
    room = sum(max(0, (u.total_bytes or 0) * u.high_watermark // 100 - u.used_bytes) for u in lower)
    for action, step_kind in STEPS:
        count, freed = 0, 0
        for study_pk, size, key, kind in _candidates(conn, action, fs.pk):
            if plan.planned + freed >= plan.to_free:
                break
            if study_pk in taken:
                continue
            if kind == "migrate-study":
                if size > room:
                    continue
                room -= size
            enqueue(
                conn,
                kind,
                {"study_pk": study_pk, "filesystem": fs.pk, "bytes": size},
                study_key=key,
                coalesce_key=f"{kind}:{study_pk}:{fs.pk}",
            )
            taken.add(study_pk)
            count, freed = count + 1, freed + size
        plan.scheduled[step_kind] = (count, freed)
    return plan


@service("filesystem-watermark-check", interval_seconds=60)
def watermark_check(run: Run) -> str:
    """Keep every filesystem between its watermarks: migrate, delete, then purge eligible
    studies until the low watermark would be reached, counting what pending items will free."""
    usages = list_filesystems(run.archive.engine)
    plans = []
    for fs in usages:
        if not fs.enabled or not fs.above_high or fs.is_mirror:
            continue  # a mirror is freed with the filesystem it mirrors
        with db.write(run.archive.engine) as conn:
            plan = plan_filesystem(conn, fs, usages)
        plans.append(plan)
        if plan.planned < plan.to_free:
            raise_alert(
                run.archive.engine,
                "warning",
                "storage",
                fs.path,
                f"above its high watermark ({fs.percent:.0f}%) and the rules allow freeing only "
                f"{plan.planned} of the {plan.to_free} bytes needed",
            )
    return "; ".join(str(p) for p in plans) or "every filesystem below its high watermark"
