"""Which partition an association speaks to: decided once, at admission, and kept on it."""

from __future__ import annotations

from typing import Any

from pynetdicom.events import Event

from hounsfield.archive.context import Archive
from hounsfield.catalog.partitions import Partition

_ATTRIBUTE = "_hounsfield_partition"


def set_partition(assoc: Any, partition: Partition) -> None:
    """Remember the partition an association was admitted to."""
    setattr(assoc, _ATTRIBUTE, partition)


def called_partition(archive: Archive, event: Event) -> Partition:
    """The partition the association was admitted to (the default one if admission did not
    run, as for an association this node requested itself)."""
    found: Partition | None = getattr(event.assoc, _ATTRIBUTE, None)
    return found if found is not None else archive.partition(None)


def calling_ae(event: Event) -> str:
    """The peer's AE title."""
    return str(event.assoc.requestor.ae_title or "").strip()
