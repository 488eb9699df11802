"""The audit records of the DIMSE edge: who an association is, and what a request asked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from hounsfield.audit.events import Actor, set_actor
from hounsfield.dimse.partition import called_partition

_ATTRIBUTE = "_hounsfield_actor"
QUERY_KEYS_AT_MOST = 512  # characters of a query kept in its record


def caller(assoc: Any, calling: str = "", host: str = "", called: str = "") -> Actor:
    """The actor behind an association (made once, kept on it)."""
    found: Actor | None = getattr(assoc, _ATTRIBUTE, None)
    if found is not None:
        return found
    requestor = assoc.requestor
    calling = calling or str(requestor.ae_title or "").strip()
    actor = Actor(
        calling,
        "DICOM",
        host=host or str(requestor.address or ""),
        ae_title=calling,
        called=called or str(assoc.acceptor.ae_title or "").strip(),
    )
    setattr(assoc, _ATTRIBUTE, actor)
    return actor


def act_as_caller(event: Event) -> Actor:
    """Make the association's caller the actor of what this request does."""
    actor = caller(event.assoc)
    set_actor(actor)
    return actor


def _one(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return "\\".join(str(v) for v in value)
    return str(value)


def query_keys(identifier: Dataset | None) -> str:
    """The keys a query gave a value, as `Keyword=value` (what was asked for)."""
    if identifier is None:
        return ""
    parts = []
    for elem in identifier:
        if elem.VR == "SQ" or elem.value in (None, "", b""):
            continue
        parts.append(f"{elem.keyword or elem.tag}={_one(elem.value)}")
    return ", ".join(parts)[:QUERY_KEYS_AT_MOST]


def subject(identifier: Dataset | None) -> tuple[str, str]:
    """The Patient ID and Study Instance UID a request names, when it names a single one."""
    found: list[str] = []
    for keyword in ("PatientID", "StudyInstanceUID"):
        value = _one(identifier.get(keyword, "")) if identifier is not None else ""
        single = value and not any(c in value for c in "\\*?")
        found.append(value if single else "")
    return found[0], found[1]


def partition_title(archive: Any, event: Event) -> str:
    """The AE title of the partition the association speaks to."""
    return called_partition(archive, event).ae_title
