"""What a reconciliation compares and finds: counts, differences, days, date ranges."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from hounsfield.errors import InvalidDataset

MISSING, EXTRA = "missing", "extra"  # missing here (the peer has it) / held here only
STUDY, SERIES, IMAGE = "STUDY", "SERIES", "IMAGE"
FETCHED, PUSHED, FAILED = "fetched", "pushed", "failed"
# How deep a comparison goes: instance counts per study and series, drilling down where they
# differ (an object missing here and another held here only in one series offset each
# other); or every series' instances listed on both sides and compared by UID.
DEPTHS = ("counts", "instances")
DIRECTIONS = ("none", "fetch", "push", "both")

Progress = Callable[[str, int, int | None], object]
"""Told the phase, how much of it is done and its total (None: not known yet)."""


def quiet(_phase: str, _done: int, _total: int | None) -> None:
    """A progress handler that shows nothing."""


@dataclass(frozen=True)
class StudyCount:
    """A study on one side: its date and instance count (None: the peer did not say)."""

    uid: str
    date: str
    instances: int | None
    sop_classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SeriesCount:
    """A series on one side and its instance count (None: the peer did not say)."""

    uid: str
    instances: int | None


@dataclass(frozen=True)
class Instance:
    """An instance on one side."""

    uid: str
    sop_class: str


@dataclass(frozen=True)
class Difference:
    """A study, series or instance held by one side only (`instances`: objects in it), and
    what its repair did."""

    side: str
    level: str
    study: str
    series: str = ""
    instance: str = ""
    sop_class: str = ""
    date: str = ""
    instances: int = 1
    repair: str = ""
    detail: str = ""


@dataclass
class Day:
    """Studies and instances dated one day, on each side."""

    date: str
    local_studies: int = 0
    local_instances: int = 0
    peer_studies: int = 0
    peer_instances: int = 0

    @property
    def same(self) -> bool:
        """Both sides count the same."""
        return (self.local_studies, self.local_instances) == (
            self.peer_studies,
            self.peer_instances,
        )


@dataclass
class Comparison:
    """One pass: the per-day table, the differences, informational notes and the reasons
    the pass could not see everything (a cap it could not split)."""

    days: list[Day]
    differences: list[Difference]
    notes: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)

    def objects(self, side: str) -> int:
        """How many objects the differences of one side hold."""
        return sum(d.instances for d in self.differences if d.side == side)


def direction_of(fetch: bool, push: bool) -> str:
    """The direction of repair that fetching and pushing flags ask for."""
    return {(False, False): "none", (True, False): "fetch", (False, True): "push"}.get(
        (fetch, push), "both"
    )


def parse_day(value: str | date) -> date:
    """A date from YYYYMMDD or YYYY-MM-DD (InvalidDataset otherwise)."""
    if isinstance(value, date):
        return value
    text = value.strip().replace("-", "")
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise InvalidDataset(f"not a date (YYYYMMDD): {value!r}") from None


def dicom_date(day: date) -> str:
    """YYYYMMDD."""
    return day.strftime("%Y%m%d")


def days_of(lo: date, hi: date) -> list[date]:
    """Every day from `lo` to `hi`, both included."""
    return [lo + timedelta(days=n) for n in range((hi - lo).days + 1)]
