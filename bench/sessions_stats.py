"""Figures of the sessions part: per level and server, from what the client processes saw."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.sessions_client import KINDS, ClientRun, Request, Visit

TARGET_SESSIONS = 100  # the level the target is judged at
TARGET_TTFI = 2.0  # seconds: p99 time from opening a study to its first image


def seconds(value: float | None) -> str:
    """Seconds with two decimals; `failed` for a first image that never came."""
    if value is None:
        return "n/a"
    return "failed" if math.isinf(value) else f"{value:.2f} s"


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (`share` in 0..1) of `values`; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True)
class KindStats:
    """Latency of one request kind over the requests started in the window."""

    count: int
    failed: int
    nbytes: int  # body bytes of those that succeeded
    wire: int  # the same bodies as sent (compressed when the server chose to)
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True)
class Cpu:
    """CPU use over the window, in shares of one core (the machine's: of all cores)."""

    client: float
    server: float
    machine: float


@dataclass
class Level:
    """One level (N sessions) against one server."""

    sessions: int
    seconds: float
    kinds: dict[str, KindStats]
    completed: int  # requests that succeeded and ended in the window
    nbytes: int  # their body bytes
    opened: int  # studies opened in the window
    visits_done: int  # series loaded completely, ended in the window
    ttfi: list[float]  # seconds from opening a study to its first image, opened in the window
    opens_failed: int  # studies opened in the window whose first image never came
    cpu: Cpu
    cancelled: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # whole run, warm-up included

    @property
    def requests_per_second(self) -> float:
        """Successful requests ended in the window, per second."""
        return self.completed / self.seconds

    @property
    def mb_per_second(self) -> float:
        """Body MB (10^6 bytes) of those requests, per second."""
        return self.nbytes / 1e6 / self.seconds

    @property
    def opened_per_second(self) -> float:
        """Studies opened in the window, per second."""
        return self.opened / self.seconds

    @property
    def sessions_per_second(self) -> float:
        """Visits (study opened, whole series loaded) ended in the window, per second."""
        return self.visits_done / self.seconds

    @property
    def server_ms_per_request(self) -> float | None:
        """The server's CPU milliseconds per successful request, over the window."""
        return 1000 * self.cpu.server * self.seconds / self.completed if self.completed else None

    @property
    def failed(self) -> int:
        """Requests started in the window that failed, plus sessions cut off at the end."""
        return sum(k.failed for k in self.kinds.values()) + self.cancelled

    def ttfi_at(self, share: float) -> float | None:
        """A percentile of the time to first image, in seconds; a study whose first image
        never came counts as infinitely slow."""
        return percentile(self.ttfi + [math.inf] * self.opens_failed, share)


@dataclass
class ServerRun:
    """One server: how the data got in, its levels, remarks and failures."""

    name: str
    stored: int = 0
    store_seconds: float = 0.0
    settle_seconds: float = 0.0
    rest: Level | None = None  # one session, one connection, first images only
    levels: list[Level] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def level(self, sessions: int) -> Level | None:
        """The level with this many sessions, if it was measured."""
        return next((lv for lv in self.levels if lv.sessions == sessions), None)


@dataclass
class SessionsResults:
    """Both servers at every level, the set-up, and what failed."""

    levels: list[int]
    seconds: float
    warmup: float
    connections: int
    processes: int
    corpus: str
    series_size: int
    index: str
    ramp: float
    drain: float
    timeout: float  # per request
    dwell: tuple[float, float]  # seconds at most on a study before the next (uniform)
    rest_seconds: float  # length of the at-rest run
    servers: list[ServerRun] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # 1-minute load average before, after
    minutes: float = 0.0

    def server(self, name: str) -> ServerRun | None:
        """The run of the named server."""
        return next((s for s in self.servers if s.name == name), None)


def _kind(requests: list[Request]) -> KindStats:
    ok = [r for r in requests if r.ok]
    latencies = [r.ended - r.began for r in ok]
    return KindStats(
        len(requests),
        len(requests) - len(ok),
        sum(r.nbytes for r in ok),
        sum(r.wire for r in ok),
        percentile(latencies, 0.50),
        percentile(latencies, 0.95),
        percentile(latencies, 0.99),
    )


def _opened(visits: list[Visit], begin: float, end: float) -> list[Visit]:
    return [v for v in visits if begin <= v.opened < end]


def level(sessions: int, runs: Sequence[ClientRun], begin: float, end: float, cpu: Cpu) -> Level:
    """The figures of one level; the window is [begin, end) in wall-clock seconds."""
    requests = [r for run in runs for r in run.requests]
    started = [r for r in requests if begin <= r.began < end]
    ended = [r for r in requests if r.ok and begin <= r.ended < end]
    visits = [v for run in runs for v in run.visits]
    opened = _opened(visits, begin, end)
    errors: Counter[str] = Counter()
    for run in runs:
        errors.update(run.errors)
    return Level(
        sessions=sessions,
        seconds=end - begin,
        kinds={name: _kind([r for r in started if r.kind == i]) for i, name in enumerate(KINDS)},
        completed=len(ended),
        nbytes=sum(r.nbytes for r in ended),
        opened=len(opened),
        visits_done=sum(1 for v in visits if v.done is not None and begin <= v.done < end),
        ttfi=[v.first_image - v.opened for v in opened if v.first_image is not None],
        opens_failed=sum(1 for v in opened if v.first_image is None),
        cpu=cpu,
        cancelled=sum(run.cancelled for run in runs),
        errors=errors,
    )


def verdict(res: SessionsResults) -> tuple[str, bool | None]:
    """The target at TARGET_SESSIONS sessions in words, and whether it was met (None: n/a)."""
    hf, orthanc = res.server("Hounsfield"), res.server("Orthanc")
    mine = hf.level(TARGET_SESSIONS) if hf else None
    theirs = orthanc.level(TARGET_SESSIONS) if orthanc else None
    ttfi = mine.ttfi_at(0.99) if mine else None
    if mine is None or theirs is None or ttfi is None:
        return f"not measured at {TARGET_SESSIONS} sessions on both servers", None
    fast = ttfi < TARGET_TTFI
    enough = mine.requests_per_second >= theirs.requests_per_second
    words = (
        f"p99 time to first image {seconds(ttfi)} (target under {TARGET_TTFI:g} s: "
        f"{'met' if fast else 'MISSED'}); throughput {mine.requests_per_second:,.0f} requests/s "
        f"against Orthanc's {theirs.requests_per_second:,.0f} "
        f"({'met' if enough else 'MISSED'})"
    )
    return words, fast and enough
