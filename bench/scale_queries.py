"""The scale part's searches: study queries by QIDO-RS and C-FIND, and one day's IMAGE count."""

from __future__ import annotations

import json
import logging
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from urllib.parse import quote

import httpx
from pydicom.dataset import Dataset
from pynetdicom.association import Association

from bench.dicom_ops import STUDY_RETURN_KEYS, associate
from bench.http_ops import client
from bench.scale_data import Population, dicom_day
from bench.scale_model import Timing

CALLING_AE = "SCALEBENCH"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
PENDING = (0xFF00, 0xFF01)
RACE = "Received unexpected C-FIND service message"  # pynetdicom lost a response
MONTH_LIMIT = 25
KINDS = ("Patient ID", "Patient name prefix", "One day", "Week and modality")
QIDO_KINDS = (*KINDS, f"31 days, limit {MONTH_LIMIT}")
ACCEPT = {"Accept": "application/dicom+json"}
WARM_UP = 10  # queries sent first, not timed
STUDY_KEYS = ("StudyInstanceUID", *STUDY_RETURN_KEYS)


@dataclass(frozen=True)
class Query:
    """One study search: its kind, matching keys, the count expected, and a QIDO limit."""

    kind: str
    keys: tuple[tuple[str, str], ...]
    expected: int
    limit: int | None = None


def _day(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def _in_range(pop: Population, lo: date, hi: date) -> Iterator[int]:
    for n in range((hi - lo).days + 1):
        yield from pop.by_day.get(dicom_day(lo + timedelta(days=n)), [])


def _by_id(pop: Population, rng: random.Random) -> Query:
    patient = rng.choice(pop.patients)
    return Query(KINDS[0], (("PatientID", patient.patient_id),), len(patient.studies))


def _by_name(pop: Population, rng: random.Random) -> Query:
    family, given = rng.choice(pop.patients).name.split("^")
    prefix = f"{family}^{given[:2]}"
    expected = sum(len(p.studies) for p in pop.patients if p.name.startswith(prefix))
    return Query(KINDS[1], (("PatientName", prefix + "*"),), expected)


def _one_day(pop: Population, rng: random.Random) -> Query:
    day = rng.choice(pop.days)
    return Query(KINDS[2], (("StudyDate", day),), len(pop.by_day[day]))


def _week(pop: Population, rng: random.Random) -> Query:
    study = rng.choice(pop.studies)
    lo = _day(study.day) - timedelta(days=rng.randrange(7))
    hi = lo + timedelta(days=6)
    modality = study.kind.modality
    expected = sum(pop.studies[n].kind.modality == modality for n in _in_range(pop, lo, hi))
    keys = (("StudyDate", f"{dicom_day(lo)}-{dicom_day(hi)}"), ("ModalitiesInStudy", modality))
    return Query(KINDS[3], keys, expected)


def _month(pop: Population, rng: random.Random) -> Query:
    lo = _day(rng.choice(pop.days))
    hi = lo + timedelta(days=30)
    expected = min(MONTH_LIMIT, sum(1 for _ in _in_range(pop, lo, hi)))
    keys = (("StudyDate", f"{dicom_day(lo)}-{dicom_day(hi)}"),)
    return Query(QIDO_KINDS[4], keys, expected, MONTH_LIMIT)


MAKERS: tuple[Callable[[Population, random.Random], Query], ...] = (
    _by_id,
    _by_name,
    _one_day,
    _week,
    _month,
)


def study_queries(pop: Population, per_kind: int, kinds: int, seed: int) -> list[Query]:
    """`per_kind` queries of each of the first `kinds` kinds, interleaved, drawn from what the
    population holds (the same draw for every server at one size)."""
    rng = random.Random(seed)
    return [MAKERS[k](pop, rng) for _ in range(per_kind) for k in range(kinds)]


def find(assoc: Association, query: Dataset) -> int:
    """How many identifiers a C-FIND returns; raises on a failure status."""
    matches = 0
    for status, identifier in assoc.send_c_find(query, STUDY_ROOT_FIND):
        if not status:
            raise RuntimeError("C-FIND: no response (association aborted or timed out)")
        code = int(status.Status)
        if code in PENDING:
            matches += identifier is not None
        elif code != 0x0000:
            raise RuntimeError(f"C-FIND failed with status 0x{code:04X}")
    return matches


def _identifier(query: Query) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in STUDY_KEYS:
        setattr(ds, keyword, None)
    for keyword, value in query.keys:
        setattr(ds, keyword, value)
    return ds


class Dropped(logging.Handler):
    """Counts pynetdicom's warnings of a response its reactor thread took off the queue (the
    reader waiting for it never sees it), while attached to pynetdicom's logger."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(RACE):
            self.count += 1

    def __enter__(self) -> Dropped:
        logging.getLogger("pynetdicom").addHandler(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        logging.getLogger("pynetdicom").removeHandler(self)


def _timed(
    out: dict[str, Timing],
    query: Query,
    call: Callable[[], int],
    label: str,
    lost: Dropped | None = None,
) -> None:
    before = lost.count if lost is not None else 0
    started = time.perf_counter()
    answers = call()
    ms = 1000 * (time.perf_counter() - started)
    timing = out.setdefault(query.kind, Timing())
    timing.dropped += (lost.count if lost is not None else 0) - before
    note = " (pynetdicom dropped a response)" if lost is not None and lost.count > before else ""
    timing.add(ms, answers, query.expected, f"{label} {query.kind} {dict(query.keys)}{note}")


def _study_find(assoc: Association, query: Query) -> int:
    return find(assoc, _identifier(query))


def cfind_studies(ae_title: str, port: int, queries: Sequence[Query]) -> dict[str, Timing]:
    """Each query as a STUDY-level C-FIND over one association, timed; per kind."""
    assoc = associate(ae_title, port, timeout=300, max_pdu=0)
    out: dict[str, Timing] = {}
    try:
        for query in queries[:WARM_UP]:
            find(assoc, _identifier(query))
        with Dropped() as lost:
            for query in queries:
                _timed(out, query, partial(_study_find, assoc, query), "C-FIND", lost)
    finally:
        assoc.release()
    return out


def query_string(query: Query) -> str:
    """The QIDO-RS query string, `^` and `*` left unescaped (Orthanc's DICOMweb plugin does
    not decode an escaped caret, so `%5E` would match nothing there)."""
    params = list(query.keys)
    if query.limit is not None:
        params.append(("limit", str(query.limit)))
    return "&".join(f"{k}={quote(v, safe='^*-')}" for k, v in params)


def _qido(http: httpx.Client, root: str, query: Query) -> int:
    answer = http.get(f"{root}/studies?{query_string(query)}", headers=ACCEPT)
    if answer.status_code == 204:
        return 0
    if answer.status_code != 200:
        raise RuntimeError(f"QIDO-RS {answer.status_code}: {answer.text[:300]}")
    return len(json.loads(answer.content))


def qido_studies(root: str, queries: Sequence[Query]) -> dict[str, Timing]:
    """Each query as GET {root}/studies over one keep-alive connection, timed; per kind."""
    out: dict[str, Timing] = {}
    with client(300) as http:
        for query in queries[:WARM_UP]:
            _qido(http, root, query)
        for query in queries:
            _timed(out, query, partial(_qido, http, root, query), "QIDO-RS")
    return out


def count_days(pop: Population, runs: int) -> list[tuple[str, int]]:
    """`runs` days with their full share of studies whose instance counts are nearest the
    median of such days (comparable work at every size), and the instances each holds."""
    days = pop.full_days or pop.days
    counts = {d: sum(pop.studies[n].instances for n in pop.by_day[d]) for d in days}
    middle = statistics.median(counts.values())
    chosen = sorted(days, key=lambda d: (abs(counts[d] - middle), d))[:runs]
    return [(d, counts[d]) for d in chosen]


def image_day(ae_title: str, port: int, days: Sequence[tuple[str, int]]) -> Timing:
    """An IMAGE-level C-FIND of every instance of one StudyDate per day given, timed."""
    out = Timing()
    assoc = associate(ae_title, port, timeout=300, max_pdu=0)
    try:
        with Dropped() as lost:
            for day, expected in days:
                query = Dataset()
                query.QueryRetrieveLevel = "IMAGE"
                query.StudyDate = day
                query.SOPInstanceUID = None
                started = time.perf_counter()
                answers = find(assoc, query)
                ms = 1000 * (time.perf_counter() - started)
                out.add(ms, answers, expected, f"IMAGE level, StudyDate {day}")
        out.dropped = lost.count
    finally:
        assoc.release()
    return out
