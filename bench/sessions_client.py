"""Viewer sessions of the sessions part in one client process: asyncio, a connection pool each."""

from __future__ import annotations

import asyncio
import json
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any
from urllib.parse import urlencode, urlsplit

from bench.sessions_http import Answer, Pool

STUDIES, SERIES, METADATA, FRAME = range(4)
KINDS = ("studies", "series", "metadata", "frame")
DICOM_JSON = "application/dicom+json"
ENCODINGS = "gzip, deflate"  # what browsers offer, but for br and zstd
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
STUDY_LIST = (  # the study list query of OHIF's worklist
    ("limit", "101"),
    ("offset", "0"),
    ("fuzzymatching", "false"),
    ("includefield", "00081030,00080060"),
)
STUDY_UID, SERIES_UID, SOP_UID, NUMBER = "0020000D", "0020000E", "00080018", "00200013"
ROWS, COLUMNS, BITS = "00280010", "00280011", "00280100"
RETRY_PAUSE = 0.2  # seconds a session waits after a failed visit before the next one
SERIES_CACHE = 256  # metadata bodies whose frame lists are kept, per client process
_SERIES: dict[tuple[str, bytes], tuple[list[str], int]] = {}


@dataclass(frozen=True)
class Plan:
    """What one client process runs: its sessions and the timeline (seconds after the start)."""

    root: str
    sessions: int
    first: int  # global number of this process's first session (its random seed)
    total: int  # sessions over all client processes (their starts are spread over `ramp`)
    ramp: float
    until: float  # no new visit, no further frame after this
    drain: float  # requests still running this long after `until` are cancelled
    connections: int  # connections per session, like a browser's six per host
    timeout: float  # per request
    dwell: tuple[float, float]  # seconds at most on a study (uniform): then the next one


@dataclass(frozen=True)
class Request:
    """One request: kind (index into KINDS), wall-clock start and end, body bytes (decoded
    and as sent), success."""

    kind: int
    began: float
    ended: float
    nbytes: int
    ok: bool
    wire: int = 0


@dataclass(frozen=True)
class Visit:
    """One study opened: when, when its first image arrived, when its series was complete."""

    opened: float
    first_image: float | None
    done: float | None


@dataclass
class ClientRun:
    """Everything one client process saw; `start` is the wall clock of its time zero."""

    start: float = 0.0
    requests: list[Request] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    cancelled: int = 0  # sessions still busy at the drain limit


class Failed(Exception):
    """A request that failed; already recorded."""


@dataclass
class Session:
    """One viewer: its own connections, random choices and the shared record."""

    plan: Plan
    pool: Pool
    rng: random.Random
    out: ClientRun

    def _record(self, kind: int, began: float, nbytes: int, problem: str, wire: int = 0) -> None:
        """Keep the request; a problem is counted and raised as Failed."""
        ended = time.time()
        self.out.requests.append(Request(kind, began, ended, nbytes, not problem, wire))
        if problem:
            self.out.errors[f"{KINDS[kind]}: {problem}"] += 1
            raise Failed(problem)

    async def fetch(self, kind: int, target: str, accept: str) -> bytes:
        """GET `target`; the body of a 200 answer, else recorded as failed and raised."""
        began = time.time()
        try:
            answer = await self.pool.get(target, {"Accept": accept, "Accept-Encoding": ENCODINGS})
        except Exception as exc:
            self._record(kind, began, 0, type(exc).__name__)
            raise Failed(str(exc)) from exc  # not reached: _record raised
        self._record(kind, began, len(answer.body), _problem(kind, answer), answer.wire)
        return answer.body

    async def dataset(self, kind: int, target: str) -> list[dict[str, Any]]:
        """A DICOM JSON answer; an empty or undecodable one counts as failed."""
        answer = _array(await self.fetch(kind, target, DICOM_JSON))
        if not answer:
            self.out.errors[f"{KINDS[kind]}: empty or not a JSON array"] += 1
            raise Failed("empty answer")
        return answer

    async def series(self, base: str) -> tuple[list[str], int]:
        """The frame URLs of the series at `base` and the pixel bytes of one frame, from its
        metadata; a body seen before is not decoded again (1 MB of JSON takes the client
        10-30 ms, more than the frames of a study)."""
        body = await self.fetch(METADATA, base + "/metadata", DICOM_JSON)
        known = _SERIES.get((base, body))
        if known is None:
            known = _frames(base, _array(body))
            if not known[0]:
                self.out.errors["metadata: empty or not a JSON array"] += 1
                raise Failed("empty answer")
            if len(_SERIES) >= SERIES_CACHE:
                _SERIES.clear()
            _SERIES[(base, body)] = known
        return known

    async def frame(self, url: str, minimum: int) -> None:
        """One frame; an answer shorter than the frame's pixel bytes counts as failed."""
        body = await self.fetch(FRAME, url, FRAME_ACCEPT)
        if len(body) < minimum:
            self.out.errors[f"frame: {len(body)} bytes, {minimum} expected at least"] += 1
            raise Failed("short frame")


def _array(body: bytes) -> list[dict[str, Any]]:
    """A JSON array of objects, or [] for anything else."""
    try:
        answer = json.loads(body)
    except ValueError:
        return []
    return answer if isinstance(answer, list) and all(isinstance(x, dict) for x in answer) else []


def _problem(kind: int, answer: Answer) -> str:
    if answer.status != 200:
        return f"HTTP {answer.status}"
    media = answer.headers.get("content-type", "")
    if kind == FRAME and not media.startswith("multipart/related"):
        return f"answered as {media!r}"
    return ""


def _value(item: dict[str, Any], tag: str) -> Any:
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


def _frames(base: str, metadata: list[dict[str, Any]]) -> tuple[list[str], int]:
    """Frame URLs in instance-number order and the pixel bytes of one frame."""
    ordered = sorted(metadata, key=lambda item: int(_value(item, NUMBER) or 0))
    urls = [f"{base}/instances/{_value(i, SOP_UID)}/frames/1" for i in ordered]
    if not ordered:
        return [], 0
    first = ordered[0]
    size = int(_value(first, ROWS) or 0) * int(_value(first, COLUMNS) or 0)
    return urls, size * int(_value(first, BITS) or 8) // 8


async def _rest(s: Session, urls: list[str], minimum: int, until: float) -> bool:
    """The other frames over the session's connections, none started after `until` (those
    running then finish); True if all arrived."""
    pending = iter(urls)
    complete = True

    async def worker() -> None:
        nonlocal complete
        for url in pending:
            if time.time() >= until:
                complete = False
                return
            try:
                await s.frame(url, minimum)
            except Failed:
                complete = False

    await asyncio.gather(*(worker() for _ in range(s.plan.connections)))
    return complete


async def _visit(s: Session, until: float) -> None:
    """Study list, pick a study, its series, one series' metadata, its first frame, then the
    rest until the series is loaded or the session's time on the study is up."""
    root = urlsplit(s.plan.root).path
    studies = await s.dataset(STUDIES, f"{root}/studies?{urlencode(STUDY_LIST)}")
    study = s.rng.choice([_value(x, STUDY_UID) for x in studies])
    opened = time.time()
    try:
        series = await s.dataset(SERIES, f"{root}/studies/{study}/series")
        chosen = s.rng.choice([_value(x, SERIES_UID) for x in series])
        base = f"{root}/studies/{study}/series/{chosen}"
        urls, minimum = await s.series(base)
        await s.frame(urls[0], minimum)
    except (Failed, asyncio.CancelledError):  # cancelled: still waiting at the drain limit
        s.out.visits.append(Visit(opened, None, None))
        raise
    first = time.time()
    leave = min(until, opened + s.rng.uniform(*s.plan.dwell))
    complete = await _rest(s, urls[1:], minimum, leave)
    s.out.visits.append(Visit(opened, first, time.time() if complete else None))


def workstation(number: int) -> str:
    """The address session `number` connects from, its own as a viewer's workstation has
    (one of the loopback's 127.1.0.1 to 127.1.255.250)."""
    return f"127.1.{number // 250 % 256}.{number % 250 + 1}"


async def _session(plan: Plan, number: int, start: float, out: ClientRun) -> None:
    until = start + plan.until
    await asyncio.sleep(max(0.0, start + plan.ramp * number / plan.total - time.time()))
    pool = Pool(plan.root, plan.connections, plan.timeout, workstation(number))
    s = Session(plan, pool, random.Random(number), out)
    try:
        while time.time() < until:
            try:
                await _visit(s, until)
            except Failed:
                await asyncio.sleep(RETRY_PAUSE)
    finally:
        s.pool.close()


async def _sessions(plan: Plan, start: float, out: ClientRun) -> None:
    numbers = range(plan.first, plan.first + plan.sessions)
    tasks = [asyncio.create_task(_session(plan, n, start, out)) for n in numbers]
    done, pending = await asyncio.wait(tasks, timeout=start + plan.until + plan.drain - time.time())
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    out.cancelled = len(pending)
    for task in done:
        if task.exception() is not None:
            out.errors[f"client: {task.exception()!r}"] += 1


def run(plan: Plan, ready: Callable[[], None] = lambda: None) -> ClientRun:
    """Every session of `plan`, time zero right after `ready()` returns."""
    out = ClientRun()

    async def main() -> None:
        ready()
        out.start = time.time()
        await _sessions(plan, out.start, out)

    asyncio.run(main())
    return out


def in_process(plan: Plan, barrier: Barrier, results: Queue[ClientRun]) -> None:
    """Entry point of a client process: wait at `barrier` with the others, run, report."""
    try:
        results.put(run(plan, lambda: _wait(barrier)))
    except BaseException as exc:
        failed = ClientRun()
        failed.errors[f"client process: {exc!r} {traceback.format_exc(limit=3)}"] += 1
        results.put(failed)


def _wait(barrier: Barrier) -> None:
    barrier.wait()
