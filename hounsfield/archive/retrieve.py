"""Retrieve: choose how each stored object travels, decompressing only when the peer needs it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from hounsfield.archive.query import Located
from hounsfield.imaging.transcode import NATIVE, UNCOMPRESSED, CannotTranscode, to_little_endian

__all__ = ["UNCOMPRESSED", "CannotTranscode", "Plan", "plan", "to_little_endian"]


@dataclass(frozen=True)
class Plan:
    """An object as the peer will get it: the stored file as is, or a converted dataset."""

    located: Located
    path: Path | None
    dataset: Dataset | None


def plan(located: Located, accepted: Iterable[str]) -> Plan:
    """Send stored bytes when the stored syntax is accepted; otherwise convert to one that is.
    Either is read from the object's first readable copy (its mirror's when it is missing)."""
    accepted = set(accepted)
    if located.transfer_syntax in accepted:
        return Plan(located, located.readable(), None)
    if not accepted & set(NATIVE):
        raise CannotTranscode(
            f"{located.sop_instance} is stored as {located.transfer_syntax}; the peer accepts "
            f"{', '.join(sorted(accepted)) or 'nothing'} for {located.sop_class}"
        )
    return Plan(located, None, to_little_endian(located.readable()))
