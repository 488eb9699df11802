"""Turn both servers' measurements into a table, judge the targets, and write RESULTS.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench import forward_report, local_report, reconcile_report, web_report
from bench.corpus import Corpus, Study
from bench.environment import Environment
from bench.forward_part import ForwardResults
from bench.local_report import LocalResults
from bench.radiographs import NAMES as RADIOGRAPHS
from bench.reconcile_bench import ReconcileResults
from bench.settings import PARTS, BenchSettings
from bench.steps import Measurements

NOTES_HEADING = "## Notes"


@dataclass(frozen=True)
class Target:
    """A goal from the issue: on the Hounsfield/Orthanc ratio, or on Hounsfield's own value."""

    limit: float
    at_least: bool
    on_ratio: bool = True

    def describe(self) -> str:
        """E.g. `>= 1.0x Orthanc` or `< 300 MB`."""
        if self.on_ratio:
            return f"{'>=' if self.at_least else '<='} {self.limit:g}x Orthanc"
        return f"{'>=' if self.at_least else '<'} {self.limit:g}"

    def judge(self, value: float | None, ratio: float | None) -> str:
        """PASS, MISS, or n/a when a figure is missing."""
        subject = ratio if self.on_ratio else value
        if subject is None:
            return "n/a"
        if self.at_least:
            ok = subject >= self.limit
        elif self.on_ratio:
            ok = subject <= self.limit
        else:
            ok = subject < self.limit  # "under" an absolute limit
        return "PASS" if ok else "MISS"


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    key: str
    label: str
    unit: str
    higher_is_better: bool
    target: Target | None = None
    digits: int = 1
    part: str = "dimse"  # which BENCH_PARTS part measures it ("any": both)


def _web(
    key: str, label: str, unit: str, higher: bool, target: Target | None = None, digits: int = 1
) -> Row:
    return Row(key, label, unit, higher, target, digits, "web")


WEB_ROWS = (
    _web(
        "stow_ips",
        "STOW-RS {stow} CT in requests of {batch} (Orthanc: POST /instances, 1 each)",
        "inst/s",
        True,
        Target(1.0, True),
    ),
    _web("stow_mbps", "STOW-RS / POST /instances, same", "MB/s", True),
    _web(
        "qido_ms",
        "QIDO-RS /studies?PatientID=, median, keep-alive",
        "ms",
        False,
        Target(1.0, False),
        2,
    ),
    _web("qido_p90_ms", "QIDO-RS /studies?PatientID=, 90th percentile", "ms", False, None, 2),
    _web(
        "wado_mbps",
        "WADO-RS series of {series}, transfer-syntax=*",
        "MB/s",
        True,
        Target(1.0, True),
    ),
    _web("wado_s", "WADO-RS series of {series}, transfer-syntax=*", "s", False, None, 3),
    _web(
        "meta_ms",
        "WADO-RS metadata, study of {instances}, warm median",
        "ms",
        False,
        Target(1.0, False),
    ),
    _web(
        "meta_cold_ms",
        "WADO-RS metadata, study of {instances}, first request",
        "ms",
        False,
        Target(1.0, False),
    ),
    _web("meta_mb", "WADO-RS metadata, study of {instances}, body size", "MB", False, None, 2),
    *(
        _web(
            f"render_cold_ms:{name}",
            f"Rendered 512 px {name}, first request (median of copies)",
            "ms",
            False,
            Target(0.5, False),
        )
        for name in RADIOGRAPHS
    ),
    *(
        _web(f"render_warm_ms:{name}", f"Rendered 512 px {name}, repeat median", "ms", False)
        for name in RADIOGRAPHS
    ),
)

ROWS = (
    Row("store1_ips", "C-STORE, 1 association", "inst/s", True, Target(1.0, True)),
    Row("store1_mbps", "C-STORE, 1 association", "MB/s", True),
    Row("storeN_ips", "C-STORE, {parallel} associations", "inst/s", True, Target(1.0, True)),
    Row("storeN_mbps", "C-STORE, {parallel} associations", "MB/s", True),
    Row("find_ms", "C-FIND STUDY, median, one association", "ms", False, Target(1.0, False), 2),
    Row("find_p90_ms", "C-FIND STUDY, 90th percentile, one association", "ms", False, None, 2),
    Row(
        "findscu_ms", "C-FIND STUDY, median, findscu process each", "ms", False, Target(1.0, False)
    ),
    Row("get_s", "C-GET series of {series}", "s", False, None, 2),
    Row("get_ips", "C-GET series of {series}", "inst/s", True, Target(1.0, True)),
    Row("move_s", "C-MOVE series of {series} to storescp", "s", False, None, 2),
    Row("move_ips", "C-MOVE series of {series} to storescp", "inst/s", True, Target(1.0, True)),
    Row(
        "move_floor_s",
        "Same series storescu to storescp, no archive (C-MOVE's floor)",
        "s",
        False,
        None,
        2,
    ),
    Row(
        "image_count_s",
        "C-FIND IMAGE, all {total} in date range",
        "s",
        False,
        Target(1.0, False),
        2,
    ),
    Row(
        "ingest_rss_mb",
        "Server peak RSS during ingest",
        "MB",
        False,
        Target(300, False, on_ratio=False),
    ),
    Row("ingest_cpu_ms", "Server CPU time per ingested instance", "ms", False, None, 2),
    *WEB_ROWS,
    Row("vmhwm_mb", "Server VmHWM at end of run", "MB", False, part="any"),
)


@dataclass(frozen=True)
class Line:
    """A table row with its figures filled in."""

    label: str
    unit: str
    hounsfield: float | None
    orthanc: float | None
    ratio: float | None
    better: str
    target: str
    result: str
    digits: int
    hounsfield_rounds: tuple[float, ...] = ()
    orthanc_rounds: tuple[float, ...] = ()


def lines(
    hf: Measurements, oc: Measurements, settings: BenchSettings, corpus: Corpus
) -> list[Line]:
    names = {
        "parallel": settings.parallel,
        "series": len(corpus.studies[0].series[0].files),
        "total": corpus.instance_count,
        "stow": settings.stow_instances,
        "batch": settings.stow_batch,
        "instances": len(corpus.studies[0].files),
    }
    out: list[Line] = []
    for row in ROWS:
        if row.part != "any" and row.part not in settings.parts:
            continue
        a, b = hf.values.get(row.key), oc.values.get(row.key)
        ratio = a / b if a is not None and b else None
        out.append(
            Line(
                row.label.format(**names),
                row.unit,
                a,
                b,
                ratio,
                "higher" if row.higher_is_better else "lower",
                row.target.describe() + (f" {row.unit}" if not row.target.on_ratio else "")
                if row.target
                else "",
                row.target.judge(a, ratio) if row.target else "",
                row.digits,
                tuple(hf.rounds.get(row.key, ())),
                tuple(oc.rounds.get(row.key, ())),
            )
        )
    return out


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _cells(line: Line) -> list[str]:
    return [
        f"{line.label} ({line.unit})",
        _fmt(line.hounsfield, line.digits),
        _fmt(line.orthanc, line.digits),
        "n/a" if line.ratio is None else f"{line.ratio:.2f}x",
        line.better,
        line.target,
        line.result,
    ]


HEADER = ["Metric", "Hounsfield", "Orthanc", "HF/Orthanc", "Better", "Target", "Result"]


def text_table(lines: list[Line]) -> str:
    """A fixed-width table for the terminal."""
    rows = [HEADER, *(_cells(x) for x in lines)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    fmt = [
        " | ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    fmt.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(fmt)


def markdown_table(lines: list[Line]) -> str:
    """The same table in Markdown."""
    out = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---", *["---:"] * 3, "---", "---", "---"]) + "|",
    ]
    for line in lines:
        cells = _cells(line)
        if line.result:
            cells[-1] = f"**{line.result}**"
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def rounds_table(lines: list[Line]) -> list[str]:
    """Every round's figure behind each median, when there was more than one round."""
    if not any(len(x.hounsfield_rounds) > 1 for x in lines):
        return []

    def runs(values: tuple[float, ...], digits: int) -> str:
        return ", ".join(_fmt(v, digits) for v in values) or "n/a"

    out = [
        "Each round's figures (the table above shows their medians):",
        "",
        "| Metric | Hounsfield rounds | Orthanc rounds |",
        "|---|---|---|",
    ]
    for x in lines:
        a, b = runs(x.hounsfield_rounds, x.digits), runs(x.orthanc_rounds, x.digits)
        out.append(f"| {x.label} ({x.unit}) | {a} | {b} |")
    return [*out, ""]


def _existing_notes(path: Path) -> str | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    at = text.find(f"\n{NOTES_HEADING}\n")
    return text[at + 1 :].rstrip() + "\n" if at >= 0 else None


def _header(
    results: list[Measurements],
    env: Environment,
    settings: BenchSettings,
    corpus: Corpus | None,
) -> list[str]:
    out = []
    if corpus is not None:
        study = corpus.studies[0]
        per = corpus.total_bytes / corpus.instance_count / 1e6
        out.append(
            f"- Corpus: {len(corpus.studies)} studies x {len(study.files)} CT instances "
            f"({len(study.series)} series of {len(study.series[0].files)}), 512x512 16-bit, "
            f"Explicit VR Little Endian, {per:.2f} MB each, {corpus.total_bytes / 1e6:,.0f} MB "
            "in all; header from pydicom's CT_small.dcm"
        )
    if not results:
        return [*out, f"- Hounsfield {env.hounsfield}, Python {env.python}"]
    return [
        *out,
        f"- Hounsfield {env.hounsfield}, {settings.hounsfield_index}, fsync on (defaults)",
        f"- Orthanc {env.orthanc}, SQLite index, SyncStorageArea on, {_plugins(results)}, "
        "StorageCompression off, MaximumPduLength 131072",
        f"- Clients: DCMTK {env.dcmtk} (storescu, findscu, getscu, movescu, storescp), "
        f"pynetdicom {env.pynetdicom} / pydicom {env.pydicom}, Python {env.python}; "
        f"TCP_NODELAY=1 for every process{web_report.client_words(settings)}, all traffic on "
        "127.0.0.1",
    ]


def _comparison(
    lines: list[Line], results: list[Measurements], settings: BenchSettings, corpus: Corpus
) -> tuple[list[str], list[str]]:
    """The Hounsfield/Orthanc table and its method, when the servers ran."""
    verdicts = [x for x in lines if x.result]
    passed = sum(x.result == "PASS" for x in verdicts)
    table = [
        "HF/Orthanc is Hounsfield's figure divided by Orthanc's; for latencies and times lower "
        "is better, so a ratio under 1 means Hounsfield is faster.",
        "",
        markdown_table(lines),
        "",
        f"Targets met: {passed} of {len(verdicts)}.",
        "",
        *rounds_table(lines),
        *web_report.decode_table(results[0], settings),
    ]
    method = [
        f"{_rounds_words(settings.rounds)}, same machine and corpus, the two servers in turn, "
        "Hounsfield first in odd rounds and Orthanc first in even ones (a machine that slows "
        "or speeds up during a run weighs on both); each server starts on an empty data "
        "folder and is stopped "
        "(SIGTERM) afterwards. The corpus is read once "
        "beforehand so both servers are fed from the page cache, and `sync` runs before each "
        "server so neither pays for the other's writes. Both get 128 KB PDUs: storescu is "
        "capped with `--max-send-pdu 131072` (Hounsfield offers 1 MB; Orthanc's maximum is "
        "128 KB, raised from its 16 KB default), getscu and storescp offer 128 KB.",
        "",
    ]
    if settings.dimse:
        method += _dimse_method(settings, corpus.studies[0])
    if settings.web:
        method += web_report.method(settings, corpus)
    method += [
        "Memory: RSS of the server's process tree sampled every 100 ms during the DIMSE ingest; "
        "VmHWM read from /proc before shutdown.",
        "",
    ]
    return table, method


def markdown(
    lines: list[Line],
    results: list[Measurements],
    env: Environment,
    settings: BenchSettings,
    corpus: Corpus | None,
    started: datetime,
    seconds: float,
    default_notes: str,
    local: LocalResults,
    forward: ForwardResults | None = None,
    reconcile: ReconcileResults | None = None,
) -> str:
    """The whole RESULTS.md; an existing "## Notes" section is kept as it is.

    `results` is empty when no part that starts the servers ran; `local` holds the parts
    measured on Hounsfield alone, `forward` and `reconcile` those parts (None: not run)."""
    table: list[str] = []
    method: list[str] = []
    if results and corpus is not None:
        table, method = _comparison(lines, results, settings, corpus)
    parts = [
        "# Benchmark: Hounsfield versus Orthanc",
        "",
        "Produced by `make bench` (`python -m bench.run`); the tables and the sections above",
        f"`{NOTES_HEADING}` are rewritten on every run.",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} (run took {seconds / 60:.1f} min)",
        f"- Machine: {env.cpus} CPUs ({env.cpu_model}), {env.memory_gb:.1f} GB RAM, "
        f"Linux {env.kernel}",
        *_header(results, env, settings, corpus),
        f"- Parts run (`BENCH_PARTS`): {', '.join(p for p in PARTS if p in settings.parts)}",
        "",
        "## Results",
        "",
        *table,
        *local_report.sections(local),
        *forward_report.sections(forward, env),
        *reconcile_report.sections(reconcile, env),
        "## Method",
        "",
        *method,
        *local_report.method(local, settings),
        *forward_report.method(forward, settings),
        *reconcile_report.method(reconcile, settings),
    ]
    remarks = [f"- {m.server}: {note}" for m in results for note in m.notes]
    remarks += web_report.remarks(results)
    remarks += local_report.remarks(local)
    remarks += forward_report.remarks(forward)
    remarks += reconcile_report.remarks(reconcile)
    failures = [f"- {m.server}, {e.splitlines()[0]}" for m in results for e in m.errors]
    parts += ["## Run remarks", "", *remarks, *failures, ""]
    for m in results:
        for error in m.errors:
            parts += [f"{m.server} error output:", "", "```", error.strip(), "```", ""]
    part_errors = (forward.errors if forward else []) + (reconcile.errors if reconcile else [])
    for error in local.errors + part_errors:
        parts += ["Error output:", "", "```", error.strip(), "```", ""]
    parts.append(_existing_notes(settings.results_file) or default_notes)
    return "\n".join(parts)


def _rounds_words(rounds: int) -> str:
    if rounds == 1:
        return "One round (`BENCH_ROUNDS=1`)"
    return (
        f"{rounds} rounds (`BENCH_ROUNDS`), each figure the median of the rounds and each ratio "
        "the ratio of the two medians"
    )


def _plugins(results: list[Measurements]) -> str:
    names = [m.labels.get("plugins", "") for m in results if m.server == "Orthanc"]
    return f"plugins: {names[0]}" if names and names[0] else "no plugins"


def _dimse_method(settings: BenchSettings, study: Study) -> list[str]:
    files = len(study.files)
    return [
        "DIMSE part:",
        "",
        f"1. C-STORE, 1 association: one storescu process sends study 1 ({files} "
        "files, `-R --max-send-pdu 131072`). Wall time of the process, start-up included.",
        f"2. C-STORE, {settings.parallel} associations: the other studies split into "
        f"{settings.parallel} file lists, one storescu each, started together; wall time until "
        "the last one exits.",
        "3. Ingest is checked: an IMAGE-level C-FIND must count every stored instance (this "
        "query is also timed, row *C-FIND IMAGE*).",
        f"4. C-FIND STUDY: {settings.find_queries} queries by Study Instance UID with nine "
        "return keys over one pynetdicom association (main figure, one warm-up query first), "
        f"then {settings.find_queries} findscu runs, each paying process start-up and "
        "association set-up.",
        "5. C-GET: getscu (Study Root, SERIES level) of study 1's first series into an empty "
        f"folder; every instance must arrive. Run {settings.retrieve_repeats} times, median "
        "kept; getscu's start-up is included.",
        "6. C-MOVE: movescu of the same series to a DCMTK storescp (AE STORESCP) that the "
        "benchmark runs; every instance must arrive. Run "
        f"{settings.retrieve_repeats} times, median kept. Then, for reference, storescu sends "
        "the same files straight to that storescp over one association, as a C-MOVE does "
        "(same PDU size, process start included, no archive): the floor any archive's "
        "C-MOVE to this destination meets.",
        "",
    ]


def write(path: Path, text: str) -> None:
    """Write RESULTS.md."""
    path.write_text(text)


def timestamp() -> datetime:
    """Now, local time."""
    return datetime.now().astimezone()
