"""RESULTS.md section of the disk part, spliced between its markers into the report text."""

from __future__ import annotations

import os
import statistics
from datetime import datetime

from bench import sections as sections_mod
from bench.disk_part import FILE_BYTES, MODES, TARGET, WRITERS, DiskResults, Run


def _num(value: float | None, fmt: str) -> str:
    return format(value, fmt) if value is not None else "n/a"


def _runs(runs: list[Run]) -> str:
    return ", ".join(f"{r.per_second:,.1f}" for r in runs) or "failed"


def _writer_rows(res: DiskResults) -> list[str]:
    out = []
    for name, _, _ in MODES:
        runs = res.writers.get(name, [])
        out.append(
            f"| {name} | {_runs(runs)} | {_num(res.median(runs, 'per_second'), ',.1f')} | "
            f"{_num(res.median(runs, 'mb_per_second'), ',.1f')} | "
            f"{_num(res.median(runs, 'busy'), '.0%')} |"
        )
    return out


def _spread(res: DiskResults) -> str:
    late = [r.late for runs in res.writers.values() for r in runs]
    if not late:
        return "No disk-limit run finished."
    return (
        "The writers of a run start together (a barrier after start-up); the widest gap "
        f"between the first and the last writer's start was {1000 * max(late):.0f} ms."
    )


def _ingest_row(res: DiskResults, runs: list[Run], name: str) -> str:
    cpu = [r.server_cpu / r.seconds for r in runs if r.seconds > 0]
    server = f"{100 * statistics.median(cpu):.0f}%" if cpu else "n/a"
    seconds = ", ".join(f"{r.seconds:.2f}" for r in runs) or "failed"
    return (
        f"| {name} | {seconds} | {_runs(runs)} | "
        f"{_num(res.median(runs, 'per_second'), ',.1f')} | "
        f"{_num(res.median(runs, 'mb_per_second'), ',.1f')} | {server} | "
        f"{_num(res.median(runs, 'busy'), '.0%')} |"
    )


def verdict(res: DiskResults) -> str:
    """Ingest against the limit, round by round, and whether the target is met."""
    ratio = res.ratio
    if ratio is None:
        return f"Ingest against the disk limit: n/a (target at least {TARGET:.0%})."
    result = "PASS" if ratio >= TARGET else "MISS"
    rounds = ", ".join(f"{r:.0%}" for r in res.rounds)
    return (
        f"Ingest against the disk limit, each round's ingest MB/s over the same round's "
        f"higher four-writer row: {rounds}; median **{ratio:.0%}**; target at least "
        f"{TARGET:.0%} with {WRITERS} associations: **{result}**."
    )


def limits(res: DiskResults) -> str:
    """What bounds ingest on this machine: the CPU of receiving and of a durable write."""
    mode, ceiling, limit = res.limit_mode, res.ceiling, res.limit_files
    if mode is None or ceiling is None or not limit or not res.ingest:
        return "What limits it: n/a (a run is missing)."
    receive = res.median(res.receive, "machine_ms") or 0.0
    write = res.median(res.writers[mode], "machine_ms") or 0.0
    machine = res.median(res.ingest, "machine_ms") or 0.0
    user = statistics.median(1000 * (r.server_cpu - r.server_system) / r.count for r in res.ingest)
    system = statistics.median(1000 * r.server_system / r.count for r in res.ingest)
    cores = os.cpu_count() or 1
    return (
        f"What limits it: the CPU, not the disk. Receiving alone (the same clients and files "
        f"to DCMTK's storescp with `--ignore`, which takes every object and keeps none, the "
        f"row above) took {receive:.2f} ms of the machine's CPU per instance, clients "
        f"included; a durable write took {write:.2f} ms per file ({mode} of the limit: CPU "
        f"busy x {cores} cores x time / files). A receiver that did nothing but receive and "
        f"durably write each object would need {receive + write:.2f} ms per instance: at most "
        f"{ceiling:,.0f} per second on {cores} cores, **{ceiling / limit:.0%} of the limit**. "
        f"Hounsfield's ingest took {machine:.2f} ms of the machine's CPU per instance; its "
        f"server {user:.2f} ms in Python and libraries (user) and {system:.2f} ms in the "
        "kernel (system: the socket, the file, its fsync and the index's) per instance."
    )


def _disk_words(res: DiskResults) -> str:
    return (
        f"Disk limit: writers create {FILE_BYTES // 1024} KiB files ({FILE_BYTES / 1e6:.2f} MB) "
        f"in `{res.folder}` on {res.filesystem}, the filesystem the archive stores on below. "
        "Each file goes through the archive's own durable write "
        "(`hounsfield.storage.atomic.write_atomic`: temporary file, write, flush, fsync, "
        "rename into place, fsync of the folder; SHA-256 of the bytes on the way); its bytes "
        "are a fresh cut of random bytes with the file's number in front, so no two files are "
        "alike. Each writer has its own folder, as four associations sending different series "
        f"do. One writer, then four as threads and four as processes; {res.seconds:g} s per run "
        f"(a writer starts no new file after that), the folder removed and `sync` run before "
        f"and after each run. {res.repeats} rounds, each: the three writer rows, then the "
        "ingest, then receiving alone (below), so that each round's ingest meets the disk as "
        "that round's limit found it (the limit drifts over an hour: see Notes). files/s "
        "counts the files of all "
        "writers over the time from the first writer's start to the last one's end; CPU busy "
        f"is the machine's ({os.cpu_count()} cores), for every process on it."
    )


def _ingest_words(res: DiskResults) -> str:
    per = res.instance_bytes / res.instances / 1e6 if res.instances else 0.0
    return (
        f"Ingest: `hounsfield serve` ({res.index}, fsync on: the default, also set with "
        "`HOUNSFIELD_FSYNC=true`) on a fresh data folder in the same folder for each run; "
        f"{res.instances} CT instances (study 2 onwards of the dimse part's cached corpus "
        f"`{res.corpus}`, 512x512 16-bit, Explicit VR Little Endian, {per:.2f} MB each, the "
        f"files of its *C-STORE, {WRITERS} associations* row) split into {WRITERS} consecutive "
        f"lists, one DCMTK storescu each (`-R`, 128 KB PDUs, TCP_NODELAY=1), started together; "
        "wall time until the last exits, storescu start-up included. Every instance is then "
        f"counted back by an IMAGE-level C-FIND (untimed). One run per round, each on a fresh "
        "server; the corpus is read beforehand (page cache) and `sync` runs before each run. "
        "Server CPU: the server's process tree, in % of one core over the run."
    )


def sections(res: DiskResults, when: datetime | None = None) -> list[str]:
    """The disk section: what was run, the runs, the medians and the ratio."""
    stamp = f" Run {when:%Y-%m-%d %H:%M}." if when else ""
    out = [
        "### Disk limit and ingest against it (Hounsfield alone)",
        "",
        f"Median of {res.repeats} rounds per row.{stamp} {_disk_words(res)}",
        "",
        "| Writers | Runs (files/s) | files/s | MB/s | CPU busy |",
        "|---|---|---:|---:|---:|",
        *_writer_rows(res),
        "",
        _spread(res),
        "",
        _ingest_words(res),
        "",
        "| Ingest | Runs (s) | Runs (inst/s) | inst/s | MB/s | Server CPU | CPU busy |",
        "|---|---|---|---:|---:|---:|---:|",
        _ingest_row(res, res.ingest, f"{WRITERS} associations"),
        _ingest_row(res, res.receive, f"{WRITERS} associations to storescp --ignore"),
        "",
        verdict(res),
        "",
        limits(res),
        "",
    ]
    return out + sections_mod.closing(res.load, res.errors)


def insert(text: str, res: DiskResults | None, when: datetime | None = None) -> str:
    """`text` (RESULTS.md) with the disk section between its markers: in place of an earlier
    one, else before `## Method` (else at the end); other sections are left as they are."""
    if res is None:
        return text
    return sections_mod.splice(text, "disk", sections(res, when), ())


def text(res: DiskResults) -> str:
    """A plain summary for the console."""
    return "\n".join(sections(res))
