"""Audit records of configuration changes, made by the functions that change it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from hounsfield.audit.trail import record


def differs(row: Mapping[Any, Any], values: Mapping[str, Any]) -> bool:
    """Whether writing `values` over `row` changes anything."""
    return any(row.get(k) != v for k, v in values.items())


def config_changed(engine: Engine, what: str) -> None:
    """Record a configuration change (by the current actor), e.g. "device PACS added"."""
    record(engine, "config", detail=what)
