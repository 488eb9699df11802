"""RESULTS.md section of the sessions part, spliced between its markers into the report text."""

from __future__ import annotations

import os
from datetime import datetime

from bench import sections as sections_mod
from bench.sessions_client import ENCODINGS, FRAME_ACCEPT, KINDS, STUDY_LIST
from bench.sessions_stats import (
    TARGET_SESSIONS,
    TARGET_TTFI,
    KindStats,
    Level,
    ServerRun,
    SessionsResults,
    seconds,
    verdict,
)

KIND_NAMES = {
    "studies": "QIDO studies",
    "series": "QIDO series",
    "metadata": "series metadata",
    "frame": "frame",
}
SHOWN_ERRORS = 5  # distinct error messages listed per server


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1000:,.0f}" if seconds is not None else "n/a"


def _num(value: float | None) -> str:
    return f"{value:,.1f}" if value is not None else "n/a"


def _rows(res: SessionsResults) -> list[tuple[ServerRun, Level]]:
    """(server, level) ordered by level, Hounsfield before Orthanc."""
    pairs = [(run, lv) for run in res.servers for lv in run.levels]
    return sorted(pairs, key=lambda p: p[1].sessions)


def _throughput_row(run: ServerRun, lv: Level) -> str:
    return (
        f"| {lv.sessions} | {run.name} | {lv.requests_per_second:,.0f} | "
        f"{lv.mb_per_second:,.0f} | {lv.opened_per_second:.1f} | {lv.sessions_per_second:.2f} | "
        f"{seconds(lv.ttfi_at(0.5))} | {seconds(lv.ttfi_at(0.99))} | {lv.failed} | "
        f"{lv.cpu.client:.0%} | {lv.cpu.server:.0%} | {_num(lv.server_ms_per_request)} | "
        f"{lv.cpu.machine:.0%} |"
    )


def _kind_cells(k: KindStats) -> str:
    return f"{_ms(k.p50)} / {_ms(k.p95)} / {_ms(k.p99)} ({k.count:,})"


def _latency_row(run: ServerRun, lv: Level) -> str:
    cells = " | ".join(_kind_cells(lv.kinds[kind]) for kind in KINDS)
    return f"| {lv.sessions} | {run.name} | {cells} |"


def _tables(res: SessionsResults) -> list[str]:
    rows = _rows(res)
    kinds = " | ".join(KIND_NAMES[k] for k in KINDS)
    return [
        "| Sessions | Server | requests/s | MB/s | studies opened/s | series loaded/s | "
        "first image p50 | first image p99 | failed | client CPU | server CPU | "
        "server CPU ms/request | machine busy |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(_throughput_row(run, lv) for run, lv in rows),
        "",
        "Latency per request kind, ms: p50 / p95 / p99 (requests started in the window).",
        "",
        f"| Sessions | Server | {kinds} |",
        "|---:|---|" + "---:|" * len(KINDS),
        *(_latency_row(run, lv) for run, lv in rows),
    ]


def _session_words(res: SessionsResults) -> str:
    query = "&".join(f"{k}={v}" for k, v in STUDY_LIST)
    low, high = res.dwell
    return (
        "A session is one viewer with its own HTTP/1.1 client, its own address (127.1.x.y "
        "on the loopback, as each viewer has its workstation's) and at most "
        f"{res.connections} keep-alive connections, as a browser has per host. It loops "
        f"without pause: the study list (`GET /studies?{query}`, the query of OHIF's "
        "worklist), a study picked at random from it and opened: its series "
        "(`GET /studies/{study}/series`), one picked at random, that series' metadata "
        "(`GET .../series/{series}/metadata`, as OHIF asks for it), then its frames in "
        "instance-number order (`GET .../instances/{sop}/frames/1`, Accept "
        f"`{FRAME_ACCEPT}`, as OHIF asks): the first alone, the other "
        f"{res.series_size - 1} over the session's {res.connections} connections at once. "
        "The session moves to the next study as soon as the series is loaded, or once it "
        f"has spent between {low:g} and {high:g} s (uniformly drawn) on the study: then it "
        "starts no further frame of it (those already asked for are awaited), as a viewer "
        "drops its prefetch when the study is closed. Without that limit a saturated node "
        "would see each session open one study per level, and the window no first image. "
        "*First image* is the time from opening the study (the study list already answered) "
        "to the end of the first frame's answer: series search, metadata and first frame. "
        "OHIF would also fetch the other series' metadata and readers pause between "
        "studies; these sessions do neither, so N sessions load the node more than N "
        "people reading would."
    )


def _load_words(res: SessionsResults) -> str:
    return (
        f"Each level runs N sessions split over {res.processes} client processes on this "
        "machine (asyncio with a small HTTP/1.1 client of the bench's own, "
        "`bench/sessions_http.py`: keep-alive, whole bodies, gzip; it needs about a fifth of "
        "the CPU per 0.5 MB answer that httpx does), started within "
        f"{res.ramp:g} s; {res.warmup:g} s of warm-up, "
        f"then a {res.seconds:g} s window. Latencies are those of the requests started in "
        f"the window (those still running then finish, for up to {res.drain:g} s; a request "
        f"times out after {res.timeout:g} s); requests/s and MB/s (response bodies) "
        "count the successful requests ending in the window, *series loaded/s* the studies "
        "whose series was loaded completely in it. Percentiles are nearest-rank; the "
        "first-image samples are the studies opened in the window (studies opened/s times "
        "the window), so p99 is about the slowest hundredth of those. *Failed*: requests "
        "started in the window that failed (HTTP status, time-out, short frame) plus "
        "sessions still running at the drain limit; a study opened in the window whose "
        "first image never came counts as infinitely slow in the first-image percentiles "
        "(shown as *failed* when it decides one). "
        "CPU over the window: the client processes' and the server's process tree's in % of "
        f"one core; machine busy is of all {os.cpu_count()} CPUs, for every process on it "
        "(the client shares the machine with the server)."
    )


def _setup_words(res: SessionsResults) -> str:
    stored = ", ".join(
        f"{run.name} {run.stored:,} instances in {run.store_seconds:.1f} s, quiet "
        f"{run.settle_seconds:.0f} s later"
        for run in res.servers
        if run.stored
    )
    return (
        "Each server runs alone on fresh storage, Hounsfield first "
        f"(`hounsfield serve`, {res.index}, fsync on), then Orthanc (DICOMweb plugin, "
        "`SyncStorageArea` on), each with the whole CT corpus "
        f"`{res.corpus}` (512x512 16-bit, Explicit VR Little Endian, series of "
        f"{res.series_size}) stored by C-STORE over four associations; the load starts "
        "once the server has used under 5% of a core for two seconds. "
        + (f"Stored: {stored}." if stored else "")
    )


def _rest_line(run: ServerRun) -> str:
    lv = run.rest
    if lv is None:
        return f"{run.name}: not measured"
    kinds = ", ".join(f"{KIND_NAMES[k]} {_ms(lv.kinds[k].p50)}" for k in KINDS)
    return (
        f"{run.name}: first image p50 {seconds(lv.ttfi_at(0.5))}, p99 "
        f"{seconds(lv.ttfi_at(0.99))} over {len(lv.ttfi)} studies; p50 ms: {kinds}"
    )


def _rest_words(res: SessionsResults) -> str:
    lines = "; ".join(_rest_line(run) for run in res.servers)
    return (
        "At rest, before the levels: one session on one connection, opening study after "
        f"study up to the first image only, for {res.rest_seconds:g} s. {lines}."
    )


def _wire_share(run: ServerRun, kind: str) -> str:
    stats = [lv.kinds[kind] for lv in run.levels]
    delivered = sum(k.nbytes for k in stats)
    return f"{sum(k.wire for k in stats) / delivered:.0%}" if delivered else "n/a"


def _wire_line(res: SessionsResults) -> str:
    shares = "; ".join(
        f"{run.name} " + ", ".join(f"{KIND_NAMES[kind]} {_wire_share(run, kind)}" for kind in KINDS)
        for run in res.servers
        if run.levels
    )
    return (
        f"The client offers `{ENCODINGS}` as a browser does; bytes on the wire per byte "
        f"delivered, all levels: {shares or 'n/a'}. MB/s above counts the bytes delivered."
    )


def _verdict_line(res: SessionsResults) -> str:
    words, met = verdict(res)
    result = {True: "met", False: "MISSED", None: "n/a"}[met]
    return (
        f"Target at {TARGET_SESSIONS} sessions (p99 time to first image under "
        f"{TARGET_TTFI:g} s and at least Orthanc's requests/s): {words}: **{result}**."
    )


def _server_notes(res: SessionsResults) -> list[str]:
    out: list[str] = []
    for run in res.servers:
        out += [f"{run.name}: {note}" for note in run.notes]
        for lv in run.levels:
            top = lv.errors.most_common(SHOWN_ERRORS)
            if top:
                listed = "; ".join(f"{message} x{n}" for message, n in top)
                out.append(f"{run.name} at {lv.sessions} sessions, errors (whole run): {listed}")
    return [line for note in out for line in (note, "")]


def sections(res: SessionsResults, when: datetime | None = None) -> list[str]:
    """The sessions section: what was run, the tables, the verdict, what failed."""
    stamp = f" Run {when:%Y-%m-%d %H:%M}." if when else ""
    out = [
        "### Viewer sessions at once against one node (Hounsfield and Orthanc)",
        "",
        f"{_setup_words(res)}{stamp}",
        "",
        _session_words(res),
        "",
        _load_words(res),
        "",
        *_tables(res),
        "",
        _rest_words(res),
        "",
        _wire_line(res),
        "",
        _verdict_line(res),
        "",
        *_server_notes(res),
    ]
    if len(res.load) == 2:
        out += [
            f"1-minute load average {res.load[0]:.2f} before the part, {res.load[1]:.2f} after; "
            f"the part took {res.minutes:.1f} minutes.",
            "",
        ]
    for error in res.errors:
        out += [f"Failed: {error.splitlines()[0]}", "", "```", error.strip(), "```", ""]
    return out


def insert(text: str, res: SessionsResults | None, when: datetime | None = None) -> str:
    """`text` (RESULTS.md) with the sessions section between its markers: in place of an
    earlier one, else after the disk (or scale) section, else before `## Method` (else at the
    end); other sections are left as they are."""
    if res is None:
        return text
    return sections_mod.splice(text, "sessions", sections(res, when), ("disk", "scale"))


def text(res: SessionsResults) -> str:
    """A plain summary for the console."""
    return "\n".join(sections(res))
