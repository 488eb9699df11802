"""pynetdicom's UID setter, remembering the UIDs it has already checked.

Every DIMSE primitive and negotiation item pynetdicom builds passes each UID through
`utils.set_uid`: a pydicom UID is made and checked by two regular expressions. A C-GET or
C-MOVE sub-operation does that about seventeen times, for a handful of distinct values (the
SOP Class, the Transfer Syntax, the instance), and every association does it again for each
presentation context it negotiates. Here a string checked once is answered from a cache; what
fails the check still goes through pynetdicom's own setter, which raises its own error.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydicom.uid import UID
from pynetdicom import dimse_primitives, pdu_items, pdu_primitives, presentation, utils

CACHED = 8192  # distinct UIDs remembered (SOP classes, syntaxes, the instances in flight)
_original = utils.set_uid
_MODULES = (dimse_primitives, pdu_items, pdu_primitives, presentation)


@lru_cache(maxsize=CACHED)
def _checked(value: str) -> UID:
    """`value` as a UID that passed pynetdicom's validation (ValueError if it fails)."""
    uid = _original(value, "UID", allow_empty=False, allow_none=False)
    assert uid is not None
    return uid


def set_uid(
    value: Any,
    name: str,
    allow_empty: bool = True,
    allow_none: bool = True,
    validate: bool = True,
) -> UID | None:
    """`utils.set_uid`, answering a non-empty string it has already checked from a cache."""
    if validate and value and isinstance(value, str):
        try:
            return _checked(str(value))
        except ValueError:
            pass  # pynetdicom's setter raises with the parameter's name
    return _original(value, name, allow_empty, allow_none, validate)


def install() -> None:
    """Route pynetdicom's UID setters through the cache (idempotent)."""
    for module in _MODULES:
        module.set_uid = set_uid  # type: ignore[attr-defined]
