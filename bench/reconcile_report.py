"""RESULTS.md sections of the reconcile part: the table, its method and its remarks."""

from __future__ import annotations

from bench.environment import Environment
from bench.reconcile_bench import (
    GAP_PERCENT,
    NODE_ENV,
    PARTITION,
    PEER,
    RACE,
    Pass,
    ReconcileResults,
)
from bench.reconcile_bench import median as mid
from bench.reconcile_corpus import SERIES_MAX, SIDE, SIZES
from bench.reconcile_ops import LOADERS
from bench.settings import BenchSettings

COUNT_TARGET = 5.0  # seconds, the whole count pass
FETCH_TARGET = 0.8  # the fetch's instances/s over movescu's


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _judge(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**PASS**" if ok else "**MISS**")


def _phase(runs: list[Pass], name: str, nth: int = 0) -> list[float]:
    return [s for r in runs if (s := r.phase(name, nth)) is not None]


def _row(step: str, seconds: list[float], *cells: str) -> str:
    """A table line: the step, its runs and median, then rate, ratio, target, result."""
    samples = ", ".join(f"{s:.2f}" for s in seconds) or "none"
    rest = [*cells, "", "", "", ""][:4]
    return f"| {step} | {samples} | {_num(mid(seconds))} | " + " | ".join(rest) + " |"


def table(r: ReconcileResults) -> list[str]:
    """Every measured step: runs, median, rate, and the two targets."""
    count, fetch = mid([p.seconds for p in r.count]), _phase(r.fetch, "fetch")
    fetched, fetch_s = mid([float(p.report.get("fetched", 0)) for p in r.fetch]), mid(fetch)
    rate = fetched / fetch_s if fetched and fetch_s else None
    move = r.gap / m if (m := mid(r.move)) else None
    ratio = rate / move if rate and move else None
    finds = mid([float(p.finds) for p in r.fetch])
    return [
        "| Step | Runs (s) | Median (s) | inst/s | vs movescu | Target | Result |",
        "|---|---|---:|---:|---:|---|---|",
        _row(
            "(a) count pass, no differences: whole command",
            [p.seconds for p in r.count],
            "",
            "",
            f"<= {COUNT_TARGET:g} s",
            _judge(None if count is None else count <= COUNT_TARGET),
        ),
        _row("(a) of which the comparison (1 C-FIND)", _phase(r.count, "compare")),
        _row("(b) `--fetch`, 1 % missing: whole command", [p.seconds for p in r.fetch]),
        _row(
            f"(b) pass 1, counts and drill-down (the run asks {_num(finds, 0)} C-FINDs)",
            _phase(r.fetch, "compare"),
        ),
        _row(
            f"(b) fetch of the {r.gap} instances (C-GET)",
            fetch,
            _num(rate, 1),
            f"{_num(ratio)}x" if ratio else "",
            f">= {FETCH_TARGET:g}x movescu",
            _judge(None if ratio is None else ratio >= FETCH_TARGET),
        ),
        _row("(b) pass 2, counts again", _phase(r.fetch, "compare", 1)),
        _row(
            "(c) by hand: findscu IMAGE level, a query per day, both sides",
            [x.seconds for x in r.manual],
        ),
        _row(f"(d) movescu of the same {r.gap} instances, IMAGE level", r.move, _num(move, 1)),
    ]


def sections(r: ReconcileResults | None, env: Environment) -> list[str]:
    """The table, for the `## Results` section."""
    if r is None or r.month is None:
        return []
    m = r.month
    return [
        "### Reconciliation (Hounsfield HQ node against a clinic's Orthanc)",
        "",
        f"One clinic, {m.date_from}-{m.date_to}: {m.studies} studies, {len(m.items):,} CT "
        f"instances of {SIDE}x{SIDE} ({m.nbytes / 1e6:,.0f} MB), all held by Orthanc "
        f"{env.orthanc} and by HQ's partition {PARTITION}. The {GAP_PERCENT:g} % gap: "
        f"{r.gap} instances of {r.gap_studies} studies, chosen at random (the same in every "
        f"run), deleted at HQ before (b), (c) and (d). `hounsfield reconcile {PARTITION} "
        f"--with {PEER} --from {m.date_from} --to {m.date_to} --json [--fetch]`:",
        "",
        *table(r),
        "",
    ]


def method(r: ReconcileResults | None, settings: BenchSettings) -> list[str]:
    """How the reconcile part measures."""
    if r is None:
        return []
    settle = NODE_ENV["HOUNSFIELD_STUDY_SETTLE_SECONDS"]
    return [
        "Reconcile part (its own node and Orthanc, after the other parts):",
        "",
        f"1. Corpus: 31 days x {settings.reconcile_per_day} studies of "
        f"{'/'.join(map(str, SIZES))} instances in turn (series of up to {SERIES_MAX}), "
        f"{SIDE}x{SIDE} 16-bit CT, Explicit VR Little Endian; one file encoded by pydicom, "
        "the others written from it with their UIDs, dates and numbers replaced "
        "(`bench/reconcile_corpus.py`, cached under bench/work/corpus).",
        "2. HQ: a node as in the DIMSE part (index as there, fsync on), with "
        f"`study_settle_seconds = {settle}` so that study processing, which every arrival "
        "and deletion schedules, never runs while something is timed; `hounsfield partition "
        f"add {PARTITION}`, `hounsfield device add {PEER} 127.0.0.1 PORT`. The clinic: "
        f'Orthanc with HQ\'s partition in `DicomModalities` (`["{PARTITION}", '
        '"127.0.0.1", PORT]`), `StorageAccessOnFind` `Always` (its default: IMAGE-level '
        "answers read the files), `SyncStorageArea` off (only the loading writes). Loaded "
        f"at the same time, untimed: Orthanc by {LOADERS} storescu processes, HQ by "
        f"`hounsfield import --partition {PARTITION}` (fsync off for the import only).",
        "3. Each reconciliation runs as `python -m bench.reconcile_timer`: the `hounsfield` "
        "typer app with the same arguments, in the same process, with a clock around "
        "`compare` (each pass) and `fetch` of `hounsfield.sites.reconcile`, and the peer's "
        "C-FINDs counted; the whole command is timed from outside (Python start-up, imports "
        "and the schema check included). One untimed run of the `hounsfield` script first.",
        f"4. {settings.reconcile_repeats} rounds, each: (a) the count pass with nothing "
        f"missing; the gap deleted at HQ (DICOMweb DELETE per instance); (c) by hand, what "
        "an operator without reconciliation would script: `findscu -S` at IMAGE level with "
        "StudyDate, Study, Series and SOP Instance UID keys, one process per day on each "
        "side (Orthanc, then HQ's partition; 62 in all), the SOP Instance UIDs taken from "
        "the output and the two sets compared (this must find exactly the gap); (b) "
        "`--fetch` (its report must list the gap as missing and fetched, nothing left); the "
        "gap deleted again; (d) one `movescu -S` (one association) with an IMAGE-level "
        f"identifier per missing instance, destination {PARTITION} (Orthanc opens an "
        "association to HQ per C-MOVE). Medians of the rounds; the fetch rate is the "
        "fetched instances over the fetch's own time. A last count pass checks that (d) "
        "brought everything back. TCP_NODELAY=1 for the DCMTK tools and Orthanc.",
        "",
    ]


def remarks(r: ReconcileResults | None) -> list[str]:
    """Loading, the entry point's own time, wrong reports and dropped C-FIND answers."""
    if r is None:
        return []
    out = []
    if r.load:
        out.append(
            "- Reconcile, loading (untimed, at the same time): "
            + ", ".join(f"{k} {v:.0f} s" for k, v in r.load.items())
        )
    if r.entry_point is not None:
        out.append(
            f"- Reconcile: the untimed first count pass by the `hounsfield` script took "
            f"{r.entry_point:.2f} s (the timed ones run the same app through "
            "bench.reconcile_timer)"
        )
    runs = r.count + r.fetch
    dropped, finds = sum(p.dropped for p in runs), sum(p.finds for p in runs)
    out.append(
        f"- Reconcile: {len(runs)} timed runs asked {finds} C-FINDs; pynetdicom logged "
        f"`{RACE}` {dropped} times (each a response taken off the queue by the association's "
        "reactor thread instead of the request's reader, and lost)"
    )
    starts = [p.phases[0]["at"] for p in r.count if p.phases]
    if starts:
        out.append(
            "- Reconcile, (a): the comparison began "
            + ", ".join(f"{s:.2f}" for s in starts)
            + " s after the command's Python code started (imports, settings, schema check)"
        )
    out += [
        f"- Reconcile, (a) run {n + 1} wrong: {p.wrong}" for n, p in enumerate(r.count) if p.wrong
    ]
    out += [
        f"- Reconcile, (b) run {n + 1} wrong: {p.wrong}" for n, p in enumerate(r.fetch) if p.wrong
    ]
    if len(r.load_average) == 2:
        out.append(
            f"- Reconcile part: 1-minute load average {r.load_average[0]:.2f} before, "
            f"{r.load_average[1]:.2f} after"
        )
    return out + [f"- FAILED: {e.splitlines()[0]}" for e in r.errors]


def text(r: ReconcileResults | None) -> str:
    """The table for the terminal."""
    if r is None or r.month is None:
        return ""
    return "\n".join(["Reconciliation", *table(r), ""])
