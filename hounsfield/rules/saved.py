"""Rules in the database: add, list, remove, apply the TOML file; study facts and outcomes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, update
from sqlalchemy.orm import aliased

from hounsfield.audit.config import config_changed, differs
from hounsfield.catalog.parse import Encoding, decode_header
from hounsfield.db import engine as db
from hounsfield.db.tables import (
    file,
    instance,
    partition,
    series,
    server_rule,
    study,
    study_outcome,
)
from hounsfield.errors import NotFound
from hounsfield.rules.evaluate import Eligibility, StudyFacts, evaluate
from hounsfield.rules.model import Condition, Rule, parse_after
from hounsfield.settings import RuleConfig


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _partition_pk(conn: Connection, title: str | None) -> int | None:
    if title is None:
        return None
    pk = conn.scalar(select(partition.c.pk).where(partition.c.ae_title == title))
    if pk is None:
        raise NotFound(f"no partition with AE title {title!r}")
    return int(pk)


def save_rule(engine: Engine, rule: Rule) -> bool:
    """Add a rule, or replace the one with the same name; True if it was new."""
    with db.write(engine) as conn:
        values = {
            "partition_pk": _partition_pk(conn, rule.partition),
            "action": rule.action,
            "enabled": rule.enabled,
            "exempt": rule.exempt,
            "is_default": rule.is_default,
            "match": rule.match,
            "conditions": json.dumps([c.as_dict() for c in rule.conditions]),
            "after_seconds": rule.after_seconds,
            "time_from": rule.time_from,
            "params": json.dumps(rule.params, sort_keys=True),
        }
        row = (
            conn.execute(select(server_rule).where(server_rule.c.name == rule.name))
            .mappings()
            .first()
        )
        if row is None:
            conn.execute(server_rule.insert().values(name=rule.name, **values))
            config_changed(engine, f"rule {rule.name} added")
            return True
        if differs(row, values):
            conn.execute(update(server_rule).where(server_rule.c.pk == row["pk"]).values(**values))
            config_changed(engine, f"rule {rule.name} changed")
        return False


def remove_rule(engine: Engine, name: str) -> None:
    """Remove a rule by name, or NotFound."""
    with db.write(engine) as conn:
        if not conn.execute(delete(server_rule).where(server_rule.c.name == name)).rowcount:
            raise NotFound(f"no rule named {name!r}")
    config_changed(engine, f"rule {name} removed")


def list_rules(engine: Engine, partition_pk: int | None = None) -> list[Rule]:
    """Rules in evaluation order; with `partition_pk`, those for that partition and global."""
    stmt = (
        select(server_rule, partition.c.ae_title)
        .outerjoin(partition, partition.c.pk == server_rule.c.partition_pk)
        .order_by(server_rule.c.pk)
    )
    if partition_pk is not None:
        stmt = stmt.where(
            (server_rule.c.partition_pk == partition_pk) | server_rule.c.partition_pk.is_(None)
        )
    with db.read(engine) as conn:
        rows = conn.execute(stmt).mappings().all()
    return [
        Rule(
            name=r["name"],
            action=r["action"],
            conditions=tuple(Condition.from_dict(c) for c in json.loads(r["conditions"])),
            match=r["match"],
            after_seconds=r["after_seconds"],
            time_from=r["time_from"],
            exempt=r["exempt"],
            is_default=r["is_default"],
            enabled=r["enabled"],
            partition=r["ae_title"],
            params=json.loads(r["params"]),
        )
        for r in rows
    ]


def rule_from_config(cfg: RuleConfig) -> Rule:
    """A rule from its TOML declaration."""
    return Rule(
        name=cfg.name,
        action=cfg.action,
        conditions=tuple(
            Condition(c.attribute, c.op, tuple(c.values) if c.values else (c.value,))
            if c.op not in ("present", "absent")
            else Condition(c.attribute, c.op)
            for c in cfg.conditions
        ),
        match=cfg.match,
        after_seconds=parse_after(cfg.after),
        time_from=cfg.time_from,
        exempt=cfg.exempt,
        is_default=cfg.default,
        enabled=cfg.enabled,
        partition=cfg.partition,
        params=dict(cfg.params),
    )


def apply_declared(engine: Engine, declared: list[RuleConfig]) -> None:
    """Make the rules declared in the TOML file exist as declared (idempotent)."""
    for cfg in declared:
        save_rule(engine, rule_from_config(cfg))


def study_facts(conn: Connection, study_pk: int) -> tuple[int, StudyFacts] | None:
    """The partition and the facts of a study, or None if it is gone."""
    row = conn.execute(
        select(study.c.partition_pk, study.c.study_date, study.c.created_at).where(
            study.c.pk == study_pk
        )
    ).first()
    if row is None:
        return None
    inner = aliased(instance)
    first = (
        select(func.min(inner.c.pk))
        .where(inner.c.series_pk == series.c.pk)
        .correlate(series)
        .scalar_subquery()
    )
    headers = conn.execute(
        select(instance.c.header, file.c.transfer_syntax)
        .join(series, series.c.pk == instance.c.series_pk)
        .join(file, file.c.instance_pk == instance.c.pk)
        .where(series.c.study_pk == study_pk, instance.c.pk == first)
        .order_by(series.c.pk)
    ).all()
    datasets: list[Any] = []
    for header, syntax in headers:
        enc = Encoding.of(syntax)
        datasets.append(decode_header(header, enc.implicit_vr, enc.little_endian))
    aes = conn.scalars(
        select(instance.c.calling_ae)
        .join(series, series.c.pk == instance.c.series_pk)
        .where(series.c.study_pk == study_pk)
        .distinct()
    ).all()
    facts = StudyFacts(
        datasets=tuple(datasets),
        calling_aes=frozenset(a for a in aes if a),
        study_date=row[1],
        received_at=_utc(row[2]),
    )
    return int(row[0]), facts


def apply_rules(engine: Engine, study_pk: int) -> list[Eligibility]:
    """Evaluate the rules on a study and store the outcome (replacing the previous one)."""
    with db.read(engine) as conn:
        found = study_facts(conn, study_pk)
    if found is None:
        return []
    partition_pk, facts = found
    outcome = evaluate(list_rules(engine, partition_pk), facts)
    with db.write(engine) as conn:
        if conn.scalar(select(study.c.pk).where(study.c.pk == study_pk)) is None:
            return []
        conn.execute(delete(study_outcome).where(study_outcome.c.study_pk == study_pk))
        for e in outcome:
            conn.execute(
                study_outcome.insert().values(
                    study_pk=study_pk,
                    action=e.action,
                    eligible_at=e.at,
                    rule_name=e.rule,
                    params=json.dumps(e.params, sort_keys=True),
                )
            )
    return outcome


def outcomes(engine: Engine, study_pk: int) -> dict[str, datetime]:
    """When a study becomes eligible for each action."""
    with db.read(engine) as conn:
        rows = conn.execute(
            select(study_outcome.c.action, study_outcome.c.eligible_at).where(
                study_outcome.c.study_pk == study_pk
            )
        ).all()
    return {action: _utc(at) for action, at in rows}
