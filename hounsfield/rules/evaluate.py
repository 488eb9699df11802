"""Evaluate rules on a study: which actions it becomes eligible for, and when."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydicom.dataset import Dataset

from hounsfield.rules.model import ACTIONS, CALLING_AE, Condition, Rule

FORWARD = "forward"


@dataclass(frozen=True)
class StudyFacts:
    """What conditions look at: one dataset per series, the sending AEs, the times."""

    datasets: tuple[Dataset, ...]
    calling_aes: frozenset[str]
    study_date: str
    received_at: datetime


@dataclass(frozen=True)
class Eligibility:
    """A study becomes eligible for `action` at `at`, by the rule `rule`."""

    action: str
    at: datetime
    rule: str
    params: dict[str, Any]


def _values(facts: StudyFacts, attribute: str) -> list[list[str]]:
    if attribute == CALLING_AE:
        return [[ae] for ae in sorted(facts.calling_aes)] or [[]]
    out: list[list[str]] = []
    for ds in facts.datasets:
        elem = ds.data_element(attribute) if attribute in ds else None
        if elem is None or elem.value in (None, "", b""):
            out.append([])
        elif elem.VM > 1:
            out.append([str(v).strip() for v in elem.value])
        else:
            out.append([str(elem.value).strip()])
    return out or [[]]


def holds(condition: Condition, facts: StudyFacts) -> bool:
    """True when any series of the study (or any sending AE) satisfies the condition."""
    for values in _values(facts, condition.attribute):
        if condition.op == "present" and values:
            return True
        if condition.op == "absent" and not values:
            return True
        if condition.op in ("equals", "one-of") and set(values) & set(condition.values):
            return True
        if condition.op == "regex":
            pattern = re.compile(condition.values[0] if condition.values else "")
            if any(pattern.search(v) for v in values):
                return True
    return False


def matches(rule: Rule, facts: StudyFacts) -> bool:
    """True when the rule's conditions hold (all or any; a rule without conditions matches)."""
    if not rule.conditions:
        return True
    results = (holds(c, facts) for c in rule.conditions)
    return all(results) if rule.match == "all" else any(results)


def _base(rule: Rule, facts: StudyFacts) -> datetime:
    if rule.time_from == "study-date" and len(facts.study_date) == 8:
        try:
            return datetime.strptime(facts.study_date, "%Y%m%d").replace(tzinfo=UTC)
        except ValueError:
            pass
    return facts.received_at


def evaluate(rules: Iterable[Rule], facts: StudyFacts) -> list[Eligibility]:
    """Per action: nothing if an exempt rule matches, else the first matching rule, else the
    default rule; rules are taken in the order given."""
    ordered = [r for r in rules if r.enabled]
    out = []
    for action in ACTIONS:
        if action == FORWARD:
            continue  # every matching forward rule applies: see `forwards`
        mine = [r for r in ordered if r.action == action]
        if any(r.exempt and matches(r, facts) for r in mine):
            continue
        chosen = next(
            (r for r in mine if not r.exempt and not r.is_default and matches(r, facts)), None
        ) or next((r for r in mine if r.is_default and not r.exempt), None)
        if chosen is not None:
            at = _base(chosen, facts) + timedelta(seconds=chosen.after_seconds)
            out.append(Eligibility(action, at, chosen.name, dict(chosen.params)))
    return out


def forwards(rules: Iterable[Rule], facts: StudyFacts, trigger: str) -> list[Eligibility]:
    """Every enabled forward rule with this trigger whose conditions hold, unless an exempt
    forward rule matches (then none); a default forward rule applies when no other does."""
    mine = [
        r
        for r in rules
        if r.enabled and r.action == FORWARD and r.params.get("trigger", "settled") == trigger
    ]
    if any(r.exempt and matches(r, facts) for r in rules if r.action == FORWARD and r.enabled):
        return []
    chosen = [r for r in mine if not r.exempt and not r.is_default and matches(r, facts)]
    if not chosen:
        chosen = [r for r in mine if r.is_default and not r.exempt]
    return [
        Eligibility(
            FORWARD,
            _base(r, facts) + timedelta(seconds=r.after_seconds),
            r.name,
            dict(r.params),
        )
        for r in chosen
    ]
