"""UID validation: digits and dots, at most 64 characters, before any path or query."""

from __future__ import annotations

import re

from hounsfield.errors import InvalidUID

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")
_LENIENT = re.compile(r"^[0-9]+(\.[0-9]+)+$")


def is_valid_uid(value: str) -> bool:
    """True for a UID safe to use in a path and a query (leading zeros tolerated)."""
    return len(value) <= 64 and bool(_LENIENT.match(value))


def is_strict_uid(value: str) -> bool:
    """True for a UID that follows PS3.5 9.1 to the letter."""
    return len(value) <= 64 and bool(_UID.match(value))


def check_uid(value: object, name: str) -> str:
    """Return the UID as a string or raise InvalidUID naming the attribute."""
    text = str(value or "").strip().rstrip("\x00")
    if not text:
        raise InvalidUID(f"{name} is missing")
    if not is_valid_uid(text):
        raise InvalidUID(f"{name} is not a valid UID: {text[:80]!r}")
    return text
