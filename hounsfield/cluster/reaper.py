"""Take back what a dead node held: its scheduled-service locks and its work-item leases."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine, update

from hounsfield.db import engine as db
from hounsfield.db.tables import service, work_item
from hounsfield.workqueue.items import Status, now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reaped:
    """What was taken back from dead nodes."""

    services: int
    items: int


def reap(engine: Engine, dead: list[str]) -> Reaped:
    """Release the service locks of `dead` nodes and let their in-progress items be claimed
    at once (their lease expires now; the claim counts the lost attempt as usual)."""
    if not dead:
        return Reaped(0, 0)
    current = now()
    with db.write(engine) as conn:
        services = conn.execute(
            update(service)
            .where(service.c.locked_by.in_(dead), service.c.locked_until > current)
            .values(locked_until=current)
        ).rowcount
        items = conn.execute(
            update(work_item)
            .where(
                work_item.c.node.in_(dead),
                work_item.c.status == Status.IN_PROGRESS.value,
                work_item.c.lease_expires_at > current,
            )
            .values(lease_expires_at=current)
        ).rowcount
    if services or items:
        log.warning(
            "node(s) %s down: released %d service lock(s), %d work item(s) to be reclaimed",
            ", ".join(dead),
            services,
            items,
        )
    return Reaped(services, items)
