"""PS3.4 C.2.2.2 attribute matching turned into SQL conditions."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, true
from sqlalchemy.sql.elements import ColumnElement as Col

from hounsfield.catalog.parse import normalize_date, normalize_time

Kind = str  # "UI", "DA", "TM", "PN", "STR"


def condition(column: Col[str], kind: Kind, raw: str) -> ColumnElement[bool] | None:
    """The SQL condition for one query key, or None for universal matching."""
    value = raw.strip().rstrip("\x00")
    if value == "" or value == "*":
        return None
    values = [v.strip() for v in value.split("\\") if v.strip()]
    if not values:
        return None
    if kind == "UI":
        return column.in_(values) if len(values) > 1 else column == values[0]
    parts = [_one(column, kind, v) for v in values]
    if any(p is None for p in parts):
        return None
    return parts[0] if len(parts) == 1 else or_(*parts)  # type: ignore[arg-type]


def _one(column: Col[str], kind: Kind, value: str) -> ColumnElement[bool] | None:
    if kind in ("DA", "TM", "DT") and "-" in value:
        return _range(column, kind, value)
    if kind == "DA":
        return column == normalize_date(value)
    if kind == "TM":
        return column == normalize_time(value)
    if "*" in value or "?" in value:
        if set(value) == {"*"}:
            return None
        pattern = _like_pattern(value)
        if kind == "PN":
            return column.like(pattern.upper(), escape="\\")
        return column.like(pattern, escape="\\")
    if kind == "PN":
        return column == value.upper()
    return column == value


def _range(column: Col[str], kind: Kind, value: str) -> ColumnElement[bool] | None:
    low, _, high = value.partition("-")
    low, high = low.strip(), high.strip()
    conds = [column != ""]
    if low:
        conds.append(column >= (normalize_date(low) if kind == "DA" else normalize_time(low)))
    if high:
        conds.append(column <= (normalize_date(high) if kind == "DA" else upper_time(high)))
    if not low and not high:
        return None
    out: ColumnElement[bool] = true()
    for c in conds:
        out = out & c
    return out


def upper_time(value: str) -> str:
    """The last instant a partial TM upper bound stands for (1200 -> 125959.999999)."""
    value = value.replace(":", "").strip()
    head, _, fraction = value.partition(".")
    if fraction:
        return normalize_time(value)
    return head + "235959"[len(head) :] + ".999999"


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")
