"""RESULTS.md section of the scale part, spliced between its markers into the report text."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from functools import partial

from bench import sections as sections_mod
from bench.scale_data import MIX, RETURNING, STUDIES_PER_DAY
from bench.scale_index import BATCH_INSTANCES
from bench.scale_model import (
    CFIND,
    QIDO,
    TARGET_RATIO,
    ScaleResults,
    Step,
    Timing,
    duration,
)
from bench.scale_queries import KINDS, MONTH_LIMIT, QIDO_KINDS, STUDY_KEYS, WARM_UP

NOT_RUN = "not run"


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _n(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _step(steps: list[Step], target: int) -> Step | None:
    return next((s for s in steps if s.target == target), None)


def _cells(res: ScaleResults, steps: list[Step], cell: Callable[[Step], str]) -> str:
    out = []
    for target in res.sizes:
        step = _step(steps, target)
        out.append(cell(step) if step is not None else NOT_RUN)
    return " | ".join(out)


def _header(res: ScaleResults, first: str) -> list[str]:
    sizes = " | ".join(f"{s:,}" for s in res.sizes)
    return [f"| {first} | {sizes} |", "|---|" + "---:|" * len(res.sizes)]


def _p50(step: Step, protocol: str) -> str:
    found = step.search(protocol)
    return _ms(found.p50) if found is not None else "n/a"


def _p99(step: Step, protocol: str) -> str:
    rounds = step.rounds.get(protocol, [])
    each = ", ".join(_ms(r) for r in rounds)
    return f"{_ms(step.p99(protocol))} ({each})" if rounds else "n/a"


def search_table(res: ScaleResults) -> list[str]:
    """Study search p50 (every query) and p99 (median of the rounds' p99, each round's in
    brackets) per protocol, Hounsfield and Orthanc, sizes as columns."""
    rows = _header(res, "Study search, ms")
    for server, steps in (("Hounsfield", res.hounsfield), ("Orthanc", res.orthanc)):
        for protocol in (QIDO, CFIND):
            cells = _cells(res, steps, partial(_p50, protocol=protocol))
            rows.append(f"| {server}, {protocol} p50 | {cells} |")
            cells = _cells(res, steps, partial(_p99, protocol=protocol))
            rows.append(f"| {server}, {protocol} p99 (each round) | {cells} |")
    return rows


def _kind(step: Step, protocol: str, kind: str) -> str:
    found = step.searches.get(protocol, {}).get(kind)
    if found is None:
        return "n/a"
    return f"{_ms(found.p50)} / {_ms(found.p99)} ({_n(found.median_answers)})"


def kind_table(res: ScaleResults) -> list[str]:
    """p50 / p99 ms (median matches) per kind of query."""
    rows = _header(res, "Per kind: p50 / p99 ms (matches)")
    for server, steps in (("Hounsfield", res.hounsfield), ("Orthanc", res.orthanc)):
        for protocol, kinds in ((QIDO, QIDO_KINDS), (CFIND, KINDS)):
            for kind in kinds:
                cells = _cells(res, steps, partial(_kind, protocol=protocol, kind=kind))
                rows.append(f"| {server}, {protocol}, {kind} | {cells} |")
    return rows


def _timing(found: Timing | None, what: str) -> str:
    if found is None:
        return "n/a"
    return f"{_ms(found.p50)} ms ({_n(found.median_answers)} {what})"


def other_table(res: ScaleResults) -> list[str]:
    """The IMAGE count of a day, the count pass of a month and the claim rate."""
    rows = _header(res, "Measure (median)")
    for server, steps in (("Hounsfield", res.hounsfield), ("Orthanc", res.orthanc)):
        cells = _cells(res, steps, lambda s: _timing(s.image_day, "instances"))
        rows.append(f"| {server}, IMAGE-level C-FIND of one day | {cells} |")
    cells = _cells(res, res.hounsfield, lambda s: _timing(s.count_pass, "instances"))
    rows.append(f"| Hounsfield, reconciliation count pass of 31 days | {cells} |")
    cells = _cells(res, res.hounsfield, lambda s: _n(s.claim_rate))
    rows.append(f"| Hounsfield, WorkQueue claims per second | {cells} |")
    return rows


def _size(step: Step) -> str:
    return f"{step.database_bytes / 1e9:.2f} GB" if step.database_bytes else "n/a"


def _took(step: Step) -> str:
    return f"{step.fill_seconds:,.0f} s ({_n(step.fill_rate)}/s)" if step.fill_seconds else "n/a"


def index_table(res: ScaleResults) -> list[str]:
    """What each index held and how long it took to grow and to measure."""
    hf, oc = res.hounsfield, res.orthanc
    rows = _header(res, "Index")
    lines: list[tuple[str, list[Step], Callable[[Step], str]]] = [
        ("Hounsfield instances (studies, patients)", hf, _held),
        ("Hounsfield database size", hf, _size),
        ("Hounsfield rows added in (rate)", hf, _took),
        ("Hounsfield ANALYZE, s", hf, lambda s: f"{s.analyze_seconds:.1f}"),
        ("Hounsfield measures, s", hf, lambda s: f"{s.measure_seconds:.0f}"),
        ("Hounsfield searches: 1-min load average", hf, _load),
        ("Orthanc instances (studies, patients)", oc, _held),
        ("Orthanc C-STORE fill (rate)", oc, _took),
        ("Orthanc measures, s", oc, lambda s: f"{s.measure_seconds:.0f}"),
        ("Orthanc searches: 1-min load average", oc, _load),
    ]
    for name, steps, cell in lines:
        rows.append(f"| {name} | {_cells(res, steps, cell)} |")
    return rows


def _load(step: Step) -> str:
    return " to ".join(f"{x:.1f}" for x in step.load) or "n/a"


def _held(step: Step) -> str:
    return f"{step.instances:,} ({step.studies:,}, {step.patients:,})"


def verdicts(res: ScaleResults) -> list[str]:
    """The target: Hounsfield's study search p99 at the largest size within 2x the smallest."""
    first, last = res.ends()
    if first is None or last is None:
        return ["Target (study search p99 at the largest size within 2x the smallest): n/a."]
    out = []
    for protocol in (QIDO, CFIND):
        ratio, low, high = res.ratio(protocol), first.p99(protocol), last.p99(protocol)
        if ratio is None:
            out.append(f"{protocol}: n/a.")
            continue
        verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
        out.append(
            f"Study search p99 by {protocol}: {_ms(high)} ms at {last.target:,} against "
            f"{_ms(low)} ms at {first.target:,} = {ratio:.2f}x; target at most "
            f"{TARGET_RATIO:g}x: **{verdict}**."
        )
    return out


def _wrong(res: ScaleResults) -> list[str]:
    out = []
    for step in res.hounsfield + res.orthanc:
        timings = [t for kinds in step.searches.values() for t in kinds.values()]
        timings += [t for t in (step.image_day, step.count_pass) if t is not None]
        wrong = [w for t in timings for w in t.wrong]
        dropped = sum(t.dropped for t in timings)
        if wrong:
            shown = "; ".join(wrong[:5])
            out.append(f"{step.server} at {step.target:,}: {len(wrong)} wrong answers ({shown}).")
        if dropped:
            out.append(
                f"{step.server} at {step.target:,}: pynetdicom dropped {dropped} C-FIND "
                "responses (its reactor thread took them off the queue; the answer then "
                "lacks them on the client's side only)."
            )
    return out or ["Every answer held the count the generated population predicts."]


def _mix() -> str:
    parts = [
        f"{k.modality} {k.weight}% ({k.series[0]}-{k.series[1]} series of "
        f"{k.per_series[0]}-{k.per_series[1]})"
        for k in MIX
    ]
    return ", ".join(parts)


def _rows_words(res: ScaleResults) -> str:
    return (
        f"Rows: a synthetic clinic storing {STUDIES_PER_DAY} studies a day, one day after the "
        f"other from 2022-01-03 ({_mix()}; {RETURNING:.0%} of the studies are of a patient seen "
        "before); each size adds the next days, so one day (and one month) holds the same work "
        "at every size and the largest index spans the most days. The first instance of each "
        "series goes through the catalog's own `index_object` (patient, study and series rows, "
        "counters and Modalities in Study as a C-STORE makes them); the other instances of the "
        "series follow in the same transaction: their `instance` and `file` rows copied in "
        "(COPY, pks from the tables' own sequences) and the series and study counters bumped "
        f"as `index_object` does; about {BATCH_INSTANCES:,} instances per transaction, "
        f"{res.loaders} loader processes each with its own share of the patients; the file "
        "table's usage trigger fires for every row. Each instance's `header` column holds the "
        "bytes of its own dataset up to Pixel Data (Explicit VR Little Endian); file rows name "
        "paths in the archive's layout, and the files are not written for Hounsfield (no "
        "measure reads one); Orthanc receives the same instances as real Part-10 files (8x8 "
        "pixels). ANALYZE after each growth. A fresh `hounsfield serve` on the grown database "
        "at each size (no scheduler, no queue workers) answers every network measure."
    )


def _search_words(res: ScaleResults) -> str:
    return (
        f"Study searches: {res.rounds} rounds of {res.queries} per kind, interleaved, keys drawn "
        "afresh for each round from what the index holds at that size (the same draws for "
        "Orthanc): a Patient ID; a Patient Name prefix "
        "(`FAMILY^GI*`); one StudyDate; a 7-day StudyDate range with ModalitiesInStudy; QIDO-RS "
        f"also a 31-day range with `limit={MONTH_LIMIT}`. QIDO-RS `GET /studies` over one "
        "keep-alive connection (default study fields; `^` and `*` sent unescaped, as Orthanc's "
        "DICOMweb plugin matches nothing for an escaped caret); C-FIND (Study Root, STUDY "
        f"level, return keys {', '.join(STUDY_KEYS)}) over one pynetdicom association; "
        f"{WARM_UP} untimed queries first in each round; p50 (nearest rank) over every query of "
        "the protocol, p99 the median of the rounds' p99 (a burst of other work on the machine "
        "spoils one round, not the figure); every answer's count is checked against the "
        "population. IMAGE count: an IMAGE-level C-FIND (StudyDate of one full day, "
        f"SOPInstanceUID returned) for the {res.repeats} full days whose instance counts are "
        "nearest the median day's."
    )


def _ops_words(res: ScaleResults) -> str:
    return (
        "Count pass: `hounsfield.sites.reconcile.reconcile` for the last 31 full days, in the "
        "bench process, the node itself as the peer (a device with its AE title and port): "
        "per-day counts from the index here, a STUDY-level C-FIND answered by the node there, "
        f"nothing differs so nothing is drilled or repaired; {res.repeats} runs, each report "
        f"checked. Claims: {res.claim_items:,} `noop` items enqueued in one transaction, then "
        "`Queue.claim` in a loop by one claimer until the queue is empty, each item completed "
        "(`Queue.complete`) right after its claim as a worker would; only the claims are timed "
        f"(each one write transaction, committed); {res.repeats} runs."
    )


def _orthanc_words(res: ScaleResults) -> str:
    return (
        f"Orthanc: {res.orthanc_version or 'Orthanc'}, its index in its own database on the "
        "same PostgreSQL server, files on disk (`StorageAccessOnFind` Always, its default; "
        "`SyncStorageArea` false for the fill), DICOMweb plugin; filled by 4 storescu "
        "processes in parts (about 2,000 instances first, then 5,000 at a time), timed; when "
        "the time spent on a size plus the rest at the last part's rate would pass "
        f"{duration(res.budget)}, that size and the larger ones are not run (Orthanc "
        f"stopped). {res.postgres}; "
        f"{os.cpu_count()} CPUs."
    )


def method(res: ScaleResults) -> str:
    """How the rows were made and what was measured."""
    return " ".join((_rows_words(res), _search_words(res), _ops_words(res), _orthanc_words(res)))


def sections(res: ScaleResults, when: datetime | None = None) -> list[str]:
    """The scale section: method, tables, verdict, what was not run and what failed."""
    stamp = f" Run {when:%Y-%m-%d %H:%M}, {res.seconds / 60:.0f} min." if when else ""
    out = [
        "### Index size (Hounsfield on PostgreSQL, Orthanc on PostgreSQL beside it)",
        "",
        f"Sizes in instances as columns.{stamp} {method(res)}",
        "",
        *index_table(res),
        "",
        *search_table(res),
        "",
        *verdicts(res),
        "",
        *kind_table(res),
        "",
        *other_table(res),
        "",
        *_wrong(res),
        "",
    ]
    for target, reason in res.orthanc_skipped.items():
        out += [f"Orthanc at {target:,}: {reason}.", ""]
    return out + sections_mod.closing(res.load, res.errors)


def insert(text: str, res: ScaleResults | None, when: datetime | None = None) -> str:
    """`text` (RESULTS.md) with the scale section between its markers: in place of an earlier
    one, else after the disk section, else before `## Method` (else at the end)."""
    if res is None:
        return text
    return sections_mod.splice(text, "scale", sections(res, when), ("disk",))


def text(res: ScaleResults) -> str:
    """A plain summary for the console."""
    return "\n".join(sections(res))
