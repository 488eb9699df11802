"""What the scale part measured: timings per server and index size, and what failed."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

QIDO, CFIND = "QIDO-RS", "C-FIND"
TARGET_RATIO = 2.0  # study search p99 at the largest size at most twice that at the smallest


def duration(seconds: float) -> str:
    """Seconds below two minutes, else minutes."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


@dataclass
class Timing:
    """Wall times of one measure in ms, what each answer held, and the wrong answers."""

    samples: list[float] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    dropped: int = 0  # C-FIND responses pynetdicom's reactor thread took (lost to the client)

    def percentile(self, share: float) -> float | None:
        """The nearest-rank percentile (share 0.5 is the median), None without samples."""
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)]

    @property
    def p50(self) -> float | None:
        """Median, ms."""
        return self.percentile(0.5)

    @property
    def p99(self) -> float | None:
        """99th percentile, ms."""
        return self.percentile(0.99)

    @property
    def median_answers(self) -> float | None:
        """The median count of matches per answer."""
        return statistics.median(self.answers) if self.answers else None

    def add(self, ms: float, answers: int, expected: int | None, what: str) -> None:
        """One sample; a wrong count is listed (not fatal)."""
        self.samples.append(ms)
        self.answers.append(answers)
        if expected is not None and answers != expected:
            self.wrong.append(f"{what}: {answers} answers, {expected} expected")


def merged(timings: list[Timing]) -> Timing:
    """All samples of several timings as one."""
    out = Timing()
    for one in timings:
        out.samples += one.samples
        out.answers += one.answers
        out.wrong += one.wrong
        out.dropped += one.dropped
    return out


@dataclass
class Step:
    """One server at one index size: its shape, how it got there, and the measures."""

    server: str
    target: int
    instances: int = 0
    studies: int = 0
    patients: int = 0
    series: int = 0
    database_bytes: int = 0
    added: int = 0  # instances added to reach this size
    fill_seconds: float = 0.0  # time to add them (rows, or C-STORE for Orthanc)
    analyze_seconds: float = 0.0
    measure_seconds: float = 0.0
    searches: dict[str, dict[str, Timing]] = field(default_factory=dict)  # protocol: kind: ...
    rounds: dict[str, list[float]] = field(default_factory=dict)  # protocol: p99 of each round
    image_day: Timing | None = None
    count_pass: Timing | None = None
    claims: list[float] = field(default_factory=list)  # claims per second, one per run
    load: list[float] = field(default_factory=list)  # 1-minute load average, measures begin, end

    @property
    def fill_rate(self) -> float | None:
        """Instances added per second."""
        return self.added / self.fill_seconds if self.fill_seconds > 0 else None

    def search(self, protocol: str) -> Timing | None:
        """Every study search of one protocol as one timing."""
        kinds = self.searches.get(protocol)
        return merged(list(kinds.values())) if kinds else None

    def p99(self, protocol: str) -> float | None:
        """The study search p99 of one protocol: the median of its rounds' p99."""
        rounds = self.rounds.get(protocol)
        return statistics.median(rounds) if rounds else None

    def absorb(self, protocol: str, found: dict[str, Timing]) -> None:
        """One round of one protocol's searches: its samples per kind, and its p99."""
        kinds = self.searches.setdefault(protocol, {})
        for kind, timing in found.items():
            kinds[kind] = merged([kinds[kind], timing]) if kind in kinds else timing
        p99 = merged(list(found.values())).p99
        if p99 is not None:
            self.rounds.setdefault(protocol, []).append(p99)

    @property
    def claim_rate(self) -> float | None:
        """Median claims per second."""
        return statistics.median(self.claims) if self.claims else None


@dataclass
class ScaleResults:
    """Every step of both servers, what was not run and why, and what failed."""

    sizes: list[int]
    queries: int  # per kind of study search and round
    rounds: int  # rounds of study searches
    repeats: int  # IMAGE counts, count passes, claim runs
    claim_items: int
    loaders: int
    budget: float  # seconds an Orthanc fill may take
    postgres: str = ""
    orthanc_version: str = ""
    hounsfield: list[Step] = field(default_factory=list)
    orthanc: list[Step] = field(default_factory=list)
    orthanc_skipped: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0
    load: list[float] = field(default_factory=list)  # 1-minute load average before, after
    errors: list[str] = field(default_factory=list)

    def ratio(self, protocol: str) -> float | None:
        """Hounsfield's study search p99 at the largest size over that at the smallest."""
        first, last = self.ends()
        if first is None or last is None:
            return None
        low, high = first.p99(protocol), last.p99(protocol)
        return high / low if low and high is not None else None

    def ends(self) -> tuple[Step | None, Step | None]:
        """Hounsfield's smallest and largest measured steps (None when fewer than two)."""
        done = [s for s in self.hounsfield if s.searches]
        return (done[0], done[-1]) if len(done) >= 2 else (None, None)
