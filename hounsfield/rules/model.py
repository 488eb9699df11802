"""Rules as values: conditions, timing, actions; parsing of the short forms the CLI accepts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from hounsfield.errors import InvalidDataset

ACTIONS = (
    "tier1-retention",
    "archive-copy",
    "online-retention",
    "delete",
    "lossless-compress",
    "lossy-compress",
    "forward",
)
TRIGGERS = ("receipt", "settled")
SYNTAXES = {
    "lossless-compress": (
        "jpeg2000-lossless",
        "jpeg-ls-lossless",
        "htj2k-lossless",
        "htj2k-lossless-rpcl",
    ),
    "lossy-compress": ("jpeg2000",),
}
OPS = ("equals", "one-of", "regex", "present", "absent")
CALLING_AE = "CallingAE"
_UNITS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "year": 365 * 86400,
}
_AFTER = re.compile(r"^\s*(\d+)\s*(second|minute|hour|day|week|month|year)s?\s*$", re.IGNORECASE)
_KEYWORD = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_WINDOW = re.compile(r"^\s*\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2}\s*$")


@dataclass(frozen=True)
class Condition:
    """One test on a DICOM attribute (by keyword) or on the sending AE (`CallingAE`)."""

    attribute: str
    op: str = "equals"
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _KEYWORD.match(self.attribute):
            raise InvalidDataset(f"invalid attribute keyword {self.attribute!r}")
        if self.op not in OPS:
            raise InvalidDataset(f"unknown condition {self.op!r}; use one of {', '.join(OPS)}")
        if self.op == "regex":
            try:
                re.compile(self.values[0] if self.values else "")
            except re.error as exc:
                raise InvalidDataset(f"invalid regular expression: {exc}") from exc

    def as_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {"attribute": self.attribute, "op": self.op, "values": list(self.values)}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Condition:
        """From the stored form."""
        return cls(value["attribute"], value.get("op", "equals"), tuple(value.get("values", ())))

    def __str__(self) -> str:
        if self.op == "present":
            return f"{self.attribute}?"
        if self.op == "absent":
            return f"!{self.attribute}"
        if self.op == "regex":
            return f"{self.attribute}~{self.values[0]}"
        return f"{self.attribute}={'|'.join(self.values)}"


def parse_condition(text: str) -> Condition:
    """`Modality=CT`, `Modality=CT|MR` (one of), `StationName~^CT` (regex), `Attr?`, `!Attr`."""
    text = text.strip()
    if text.startswith("!"):
        return Condition(text[1:], "absent")
    if text.endswith("?"):
        return Condition(text[:-1], "present")
    for sep, op in (("~", "regex"), ("=", "equals")):
        if sep in text:
            attribute, value = text.split(sep, 1)
            if op == "equals" and "|" in value:
                return Condition(attribute.strip(), "one-of", tuple(value.split("|")))
            return Condition(attribute.strip(), op, (value,))
    raise InvalidDataset(f"cannot read condition {text!r}")


def parse_after(text: str) -> int:
    """Seconds in `3 weeks`, `10 days`, `1 year` (a month is 30 days, a year 365)."""
    match = _AFTER.match(text)
    if not match:
        raise InvalidDataset(f"cannot read delay {text!r}; write e.g. '3 weeks' or '10 days'")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def format_after(seconds: int) -> str:
    """The largest whole unit for a delay."""
    for unit in ("year", "month", "week", "day", "hour", "minute"):
        size = _UNITS[unit]
        if seconds and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


@dataclass(frozen=True)
class Rule:
    """A server rule: when its conditions hold, the study becomes eligible for its action."""

    name: str
    action: str
    conditions: tuple[Condition, ...] = ()
    match: Literal["all", "any"] = "all"
    after_seconds: int = 0
    time_from: Literal["receipt", "study-date"] = "receipt"
    exempt: bool = False
    is_default: bool = False
    enabled: bool = True
    partition: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < len(self.name) <= 64:
            raise InvalidDataset("a rule name has 1 to 64 characters")
        if self.action not in ACTIONS:
            raise InvalidDataset(f"unknown action {self.action!r}; use one of {', '.join(ACTIONS)}")
        if self.match not in ("all", "any"):
            raise InvalidDataset("match is 'all' or 'any'")
        if self.time_from not in ("receipt", "study-date"):
            raise InvalidDataset("time is counted from 'receipt' or 'study-date'")
        if self.is_default and self.conditions:
            raise InvalidDataset("a default rule applies when no other does: it has no conditions")
        syntax = self.params.get("syntax")
        allowed = SYNTAXES.get(self.action, ())
        if syntax is not None and syntax not in allowed:
            raise InvalidDataset(
                f"{self.action} takes syntax {' or '.join(allowed) or 'none'}, not {syntax!r}"
            )
        if self.action == "lossy-compress":
            ratio = self.params.get("ratio")
            if not isinstance(ratio, int | float) or ratio <= 1:
                raise InvalidDataset("a lossy-compress rule needs a ratio above 1")
        if self.action == "forward":
            _check_forward(self.params)
        tier = self.params.get("tier")
        if tier is not None and (self.action != "archive-copy" or tier not in (1, 2, 3)):
            raise InvalidDataset("only archive-copy takes a tier, and it is 1, 2 or 3")


def destinations(params: dict[str, Any]) -> list[str]:
    """A forward rule's destination AE titles (a list, or one string of comma-separated)."""
    value = params.get("destinations", params.get("destination", []))
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items if str(v).strip()]


def _check_forward(params: dict[str, Any]) -> None:
    if not destinations(params):
        raise InvalidDataset("a forward rule needs one or more destinations")
    trigger = params.get("trigger", "settled")
    if trigger not in TRIGGERS:
        raise InvalidDataset(f"a forward rule triggers on {' or '.join(TRIGGERS)}, not {trigger!r}")
    window = params.get("window")
    if window is not None and not _WINDOW.match(str(window)):
        raise InvalidDataset(f"cannot read window {window!r}; write e.g. '22:00-06:00'")
