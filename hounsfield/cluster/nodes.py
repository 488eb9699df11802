"""The node registry: register, beat, drain, and list the nodes with their state and work."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update

from hounsfield.audit.config import config_changed
from hounsfield.db import engine as db
from hounsfield.db.tables import node, work_item
from hounsfield.db.upsert import get_or_insert
from hounsfield.errors import NotFound
from hounsfield.workqueue.items import Status, now, utc

STATES = ("up", "suspect", "down", "draining", "stopped")


@dataclass(frozen=True)
class NodeInfo:
    """What a node says about itself when it starts."""

    name: str
    address: str
    dimse_port: int
    http_port: int
    version: str
    pid: int
    runs: tuple[str, ...]


@dataclass(frozen=True)
class NodeRow:
    """A node as listed, with its state judged from its last beat."""

    name: str
    address: str
    dimse_port: int
    http_port: int
    version: str
    pid: int
    runs: list[str]
    started_at: datetime
    beat_at: datetime
    stopped_at: datetime | None
    draining: bool
    healthy: bool
    problem: str
    associations: int
    state: str
    holds: int  # work items in progress under this node's lease

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "name": self.name,
            "address": self.address,
            "dimse_port": self.dimse_port,
            "http_port": self.http_port,
            "version": self.version,
            "pid": self.pid,
            "runs": self.runs,
            "started_at": self.started_at.isoformat(),
            "beat_at": self.beat_at.isoformat(),
            "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
            "state": self.state,
            "healthy": self.healthy,
            "problem": self.problem,
            "associations": self.associations,
            "holds": self.holds,
        }


def judge(
    beat_at: datetime, stopped_at: datetime | None, draining: bool, beat: float, down: float
) -> str:
    """A node's state: stopped (left cleanly), down (no beat for `down` seconds), suspect
    (a beat missed: none for twice `beat` seconds), draining, or up."""
    if stopped_at is not None:
        return "stopped"
    age = (now() - beat_at).total_seconds()
    if age > down:
        return "down"
    if age > 2 * beat:
        return "suspect"
    return "draining" if draining else "up"


def register(engine: Engine, info: NodeInfo) -> None:
    """Record a node's start (a restarted node keeps its row and its draining flag)."""
    current = now()
    values = {
        "address": info.address[:255],
        "dimse_port": info.dimse_port,
        "http_port": info.http_port,
        "version": info.version[:32],
        "pid": info.pid,
        "runs": json.dumps(list(info.runs)),
        "started_at": current,
        "beat_at": current,
        "stopped_at": None,
        "healthy": True,
        "problem": "",
        "associations": 0,
    }
    with db.write(engine) as conn:
        get_or_insert(conn, node, {"name": info.name[:64]}, values | {"draining": False})
        conn.execute(update(node).where(node.c.name == info.name[:64]).values(**values))


def beat(engine: Engine, name: str, *, healthy: bool, problem: str, associations: int) -> bool:
    """Record a beat; returns whether the node is asked to drain."""
    with db.write(engine) as conn:
        conn.execute(
            update(node)
            .where(node.c.name == name[:64])
            .values(
                beat_at=now(),
                stopped_at=None,
                healthy=healthy,
                problem=problem[:1000],
                associations=associations,
            )
        )
        return bool(conn.scalar(select(node.c.draining).where(node.c.name == name[:64])))


def stopped(engine: Engine, name: str) -> None:
    """Record a clean stop."""
    with db.write(engine) as conn:
        conn.execute(update(node).where(node.c.name == name[:64]).values(stopped_at=now()))


def draining(engine: Engine, name: str) -> bool:
    """Whether the node `name` is asked to drain (False for an unknown node)."""
    with db.read(engine) as conn:
        return bool(conn.scalar(select(node.c.draining).where(node.c.name == name[:64])))


def set_draining(engine: Engine, name: str, on: bool) -> None:
    """Ask a node to drain (finish what it serves, take nothing new) or to serve again."""
    with db.write(engine) as conn:
        if not conn.execute(
            update(node).where(node.c.name == name[:64]).values(draining=on)
        ).rowcount:
            raise NotFound(f"no node named {name!r}")
    config_changed(engine, f"node {name} {'drains' if on else 'serves again'}")


def forget(engine: Engine, name: str) -> None:
    """Remove a node that is stopped or down from the registry."""
    with db.write(engine) as conn:
        if not conn.execute(node.delete().where(node.c.name == name[:64])).rowcount:
            raise NotFound(f"no node named {name!r}")
    config_changed(engine, f"node {name} forgotten")


def list_nodes(engine: Engine, beat: float, down: float) -> list[NodeRow]:
    """Every registered node by name, with its state and the work items it holds."""
    with db.read(engine) as conn:
        rows = conn.execute(select(node).order_by(node.c.name)).mappings().all()
        held: dict[str, int] = dict(
            conn.execute(
                select(work_item.c.node, func.count())
                .where(work_item.c.status == Status.IN_PROGRESS.value)
                .group_by(work_item.c.node)
            ).all()
        )
    result = []
    for r in rows:
        beat_at, stopped_at = utc(r["beat_at"]), utc(r["stopped_at"])
        assert beat_at is not None
        result.append(
            NodeRow(
                name=r["name"],
                address=r["address"],
                dimse_port=r["dimse_port"],
                http_port=r["http_port"],
                version=r["version"],
                pid=r["pid"],
                runs=json.loads(r["runs"] or "[]"),
                started_at=utc(r["started_at"]),  # type: ignore[arg-type]
                beat_at=beat_at,
                stopped_at=stopped_at,
                draining=r["draining"],
                healthy=r["healthy"],
                problem=r["problem"],
                associations=r["associations"],
                state=judge(beat_at, stopped_at, r["draining"], beat, down),
                holds=int(held.get(r["name"], 0)),
            )
        )
    return result


def down_nodes(engine: Engine, down: float, within: float = 3600.0) -> list[str]:
    """The names of nodes that neither beat for `down` seconds nor stopped cleanly, and beat
    last less than `within` seconds ago (by then every lease they held has run out anyway)."""
    current = now()
    with db.read(engine) as conn:
        return list(
            conn.scalars(
                select(node.c.name).where(
                    node.c.beat_at < current - timedelta(seconds=down),
                    node.c.beat_at > current - timedelta(seconds=within),
                    node.c.stopped_at.is_(None),
                )
            )
        )
