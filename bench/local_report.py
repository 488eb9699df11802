"""RESULTS.md sections of the parts measured on Hounsfield alone: WorkQueue and compression."""

from __future__ import annotations

from dataclasses import dataclass

from bench.compress_bench import RADIOGRAPHS, CompressRow
from bench.queue_bench import PG_DATABASE, QueueRun
from bench.settings import BenchSettings

SYNTAX_NAMES = {
    "jpeg2000-lossless": "JPEG 2000 lossless",
    "jpeg-ls-lossless": "JPEG-LS lossless",
    "htj2k-lossless": "HTJ2K lossless",
}


@dataclass
class LocalResults:
    """What the queue and compress parts measured (None: the part did not run)."""

    queue: list[QueueRun] | None = None
    compress: list[CompressRow] | None = None

    @property
    def errors(self) -> list[str]:
        """Every failure, first line first."""
        queue = [r.error for r in self.queue or [] if r.error]
        return queue + [r.error for r in self.compress or [] if r.error]


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _ratio_to_one(run: QueueRun, runs: list[QueueRun]) -> str:
    one = next((r for r in runs if r.database == run.database and r.processes == 1), None)
    if run.processes == 1 or one is None or not one.per_second or not run.per_second:
        return ""
    return f"{run.per_second / one.per_second:.2f}x"


def queue_table(runs: list[QueueRun]) -> list[str]:
    """Items per second for each database and process count."""
    out = [
        "| Database | Processes | Threads each | Items | Drain (s) | Items/s | vs 1 process | "
        "Items per process | Worker CPU per item (ms) | With start-up (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in runs:
        shares = " + ".join(str(n) for n in r.shares) if r.shares else "n/a"
        per_second = "**failed**" if r.error else _num(r.per_second, 0)
        cpu = r.cpu_seconds * 1000 / r.items if r.cpu_seconds is not None else None
        out.append(
            f"| {r.database} | {r.processes} | {r.threads or 'n/a'} | {r.items:,} | "
            f"{_num(r.seconds, 2)} | {per_second} | {_ratio_to_one(r, runs)} | {shares} | "
            f"{_num(cpu, 2)} | {_num(r.with_startup, 2)} |"
        )
    return out


def compress_table(rows: list[CompressRow]) -> list[str]:
    """Speed and ratio of each syntax on each source."""
    out = [
        "| Source | Image (columns x rows) | Syntax | Images | Original (MB) | Compressed (MB) | "
        "Ratio | compress() (MB/s) | compress() per image (ms) | Decode back (MB/s) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = SYNTAX_NAMES.get(r.syntax, r.syntax)
        if r.error:
            out.append(f"| {r.source} | {r.image} | {name} | {r.images} | **failed** |||||| ")
            continue
        out.append(
            f"| {r.source} | {r.image} | {name} | {r.images} | {r.original_bytes / 1e6:,.2f} | "
            f"{r.compressed_bytes / 1e6:,.2f} | {_num(r.ratio, 2)} | {_num(r.compress_mbps)} | "
            f"{r.compress_s * 1000 / r.images:,.1f} | {_num(r.decode_mbps)} |"
        )
    return out


def sections(local: LocalResults) -> list[str]:
    """The result tables, for the `## Results` section."""
    out: list[str] = []
    if local.queue is not None:
        out += [
            "### WorkQueue throughput (Hounsfield alone)",
            "",
            "No Orthanc counterpart: absolute figures. *vs 1 process* is the 2-process rate "
            "divided by the 1-process rate on the same database.",
            "",
            *queue_table(local.queue),
            "",
        ]
    if local.compress is not None:
        out += [
            "### Lossless compression (Hounsfield alone)",
            "",
            "MB/s are megabytes (10^6 bytes) of original pixel data per second; ratio is "
            "original pixel bytes over compressed bytes.",
            "",
            *compress_table(local.compress),
            "",
        ]
    return out


def method(local: LocalResults, settings: BenchSettings) -> list[str]:
    """How the two parts measure."""
    out: list[str] = []
    if local.queue is not None:
        pg = (
            f"PostgreSQL (database `{PG_DATABASE}` on the server of `BENCH_QUEUE_PG`, dropped "
            "and created for every run and dropped at the end)"
            if settings.queue_postgres
            else "PostgreSQL skipped (`BENCH_QUEUE_PG=off`)"
        )
        threads = (
            f"{settings.queue_threads} threads each (`BENCH_QUEUE_THREADS`)"
            if settings.queue_threads
            else "Hounsfield's default thread count each (`queue_threads`)"
        )
        out += [
            "WorkQueue part (no server running):",
            "",
            f"1. A fresh index on SQLite (a new file) and on {pg}: schema created, "
            f"{settings.queue_items:,} `noop` items enqueued in one transaction.",
            f"2. 1, then 2 worker processes (`python -m bench.queue_worker`), {threads}, each "
            "running `Worker(archive).run_until_idle()` — what `hounsfield queue work` runs — "
            "claiming under a lease, running the no-op processor and completing each item. "
            "Every process first opens the archive and says it is ready; the clock starts "
            "when all are told to go and stops when the last one has drained the queue "
            "(*Drain*); *With start-up* is from spawning the processes until the last exited. "
            "*Worker CPU per item* is the CPU time (user + system) of all worker processes "
            "during the drain divided by the items; the database server's CPU is not in it.",
            "3. Afterwards every item must be `completed` and the items run per process must add "
            f"up to {settings.queue_items:,} (each exactly once). Run "
            f"{settings.queue_repeats} times on a fresh database each time; the median run is "
            "shown (every sample is in the remarks).",
            "",
        ]
    if local.compress is not None:
        names = ", ".join(f"`{s}`" for s in SYNTAX_NAMES)
        out += [
            "Compression part (no server running, one process):",
            "",
            f"1. Sources: an evenly spread sample of {settings.compress_instances} files of the "
            f"CT corpus, each compressed once, and pydicom-data's {' and '.join(RADIOGRAPHS)} "
            f"(read from its folder directly), each compressed {settings.compress_repeats} "
            "times, the median kept.",
            f"2. The timed call is `hounsfield.imaging.compress.compress(dataset, name)` for "
            f"{names} on a dataset parsed beforehand: it decodes the original pixels, encodes "
            "each frame, encapsulates, writes the Part-10 bytes and verifies them by decoding "
            "them back and comparing to the original (the module has no public entry point "
            "for the verification alone).",
            "3. *Decode back* is timed separately: `dcmread` of the compressed Part-10 bytes and "
            "`pixel_array`, as the verification and any reader do; the encoding alone is "
            "roughly compress() minus this. Every codec is used once beforehand (untimed).",
            "",
        ]
    return out


def remarks(local: LocalResults) -> list[str]:
    """Per-repetition samples and failures, for the run remarks."""
    out = [
        f"- WorkQueue {r.database}, {r.processes} process(es): items/s of each run "
        + ", ".join(f"{s:,.0f}" for s in r.samples)
        for r in local.queue or []
        if r.samples
    ]
    return out + [f"- FAILED: {e.splitlines()[0]}" for e in local.errors]


def text(local: LocalResults) -> str:
    """The tables for the terminal (Markdown reads well enough there)."""
    parts: list[str] = []
    if local.queue is not None:
        parts += ["WorkQueue throughput", *queue_table(local.queue), ""]
    if local.compress is not None:
        parts += ["Lossless compression", *compress_table(local.compress), ""]
    return "\n".join(parts)
