"""The fuzzing part of `make reliability`: the property fuzzers run long, then 100,000 mutated
datasets by C-STORE and STOW-RS against a real `hounsfield serve` on each database."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.reliability.consistency import Consistency, check
from bench.reliability.coverage_fuzz import write_seeds
from bench.reliability.mutate import DATASET_KINDS, META_KINDS, Mutant, corpus, mutants
from bench.reliability.node import LiveNode
from bench.reliability.sender import Tally, Target, send_cstore, send_stow

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "bench" / "work" / "reliability-fuzz"
RESULTS = Path(__file__).with_name("fuzz_results.md")
PG_ADMIN = os.environ.get("HOUNSFIELD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DATABASE = "hounsfield_fuzz"  # the only database this part creates and drops
FUZZ_TESTS = [
    "tests/reliability/test_fuzz_header_scan.py",
    "tests/reliability/test_fuzz_parse.py",
    "tests/reliability/test_fuzz_multipart.py",
    "tests/reliability/test_fuzz_qido.py",
]
SEED = 13
TARGETS = ("scan", "parse", "part10", "multipart", "qido")


@dataclass
class PropertyRun:
    """One property test run long: examples tried, seconds, whether it held."""

    name: str
    examples: int = 0
    invalid: int = 0
    seconds: float = 0.0
    passed: bool = False


@dataclass
class CoverageRun:
    """One libFuzzer target run for a while: inputs tried, edges covered, crash or not."""

    target: str
    runs: int = 0
    seconds: float = 0.0
    coverage: int = 0
    features: int = 0
    crashed: bool = False


@dataclass
class IngestRun:
    """Mutated datasets sent to one node, and what was found afterwards."""

    database: str
    cstore: Tally
    stow: Tally
    kinds: Counter[str] = field(default_factory=Counter)
    consistency: Consistency | None = None
    alive: bool = False
    exit_code: int | None = None
    seconds: float = 0.0
    logged_errors: Counter[str] = field(default_factory=Counter)  # ERROR lines by logger


def _pg_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except Exception:
        return False


def properties(examples: int, seed: int) -> tuple[list[PropertyRun], str]:
    """Run the fuzz tests with `examples` examples each (from `seed`); their runs and output."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore",
        "--hypothesis-show-statistics",
        f"--hypothesis-seed={seed}",
        "--timeout=3600",
        *FUZZ_TESTS,
    ]
    if not _pg_reachable():
        command += ["-k", "not postgresql"]
    env = dict(os.environ, HOUNSFIELD_FUZZ_EXAMPLES=str(examples))
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    output = done.stdout + done.stderr
    return _statistics(output), output


_TEST = re.compile(r"^(tests/\S+::\S+):$", re.M)
_GENERATE = re.compile(
    r"during generate phase \(([\d.]+) seconds\):.*?(\d+) passing, (\d+) failing, and (\d+) "
    r"invalid",
    re.S,
)


def _statistics(output: str) -> list[PropertyRun]:
    """Each test's examples and seconds from Hypothesis's statistics."""
    runs: list[PropertyRun] = []
    heads = list(_TEST.finditer(output))
    ends = [h.start() for h in heads[1:]] + [len(output)]
    for head, end in zip(heads, ends, strict=True):
        block = output[head.end() : end]
        run = PropertyRun(head.group(1).split("/")[-1])
        found = _GENERATE.search(block)
        if found:
            run.seconds = float(found.group(1))
            run.examples = int(found.group(2)) + int(found.group(3))
            run.invalid = int(found.group(4))
            run.passed = int(found.group(3)) == 0 and "distinct failure" not in block
        runs.append(run)
    failed = set(re.findall(r"^FAILED (\S+)", output, re.M))
    for run in runs:
        if any(f.endswith(run.name) for f in failed):
            run.passed = False
    return runs


def coverage(seconds: int, seed: int) -> list[CoverageRun] | None:
    """Each atheris target for `seconds` (None when atheris is not installed); a crash's
    output is kept under bench/work/reliability-fuzz."""
    if importlib.util.find_spec("atheris") is None:
        return None
    out: list[CoverageRun] = []
    for target in TARGETS:
        folder = write_seeds(target, WORK / "coverage" / target)
        command = [
            sys.executable,
            "-m",
            "bench.reliability.coverage_fuzz",
            target,
            str(folder),
            f"-max_total_time={seconds}",
            "-timeout=5",  # an input that takes longer is a hang, reported as a crash
            f"-seed={seed}",
            f"-artifact_prefix={WORK / 'coverage'}/{target}-",
        ]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        output = done.stdout + done.stderr
        run = CoverageRun(target, crashed=done.returncode != 0)
        if found := re.search(r"Done (\d+) runs in (\d+) second", output):
            run.runs, run.seconds = int(found.group(1)), float(found.group(2))
        if edges := re.findall(r"cov: (\d+) ft: (\d+)", output):
            run.coverage, run.features = int(edges[-1][0]), int(edges[-1][1])
        if run.crashed:
            (WORK / "coverage" / f"{target}-output.txt").write_text(output)
        out.append(run)
    return out


def _fresh_pg() -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DATABASE}")
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + PG_DATABASE


def _drop_pg() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")


def _counted(
    stream: Iterator[Mutant], kinds: Counter[str], lock: threading.Lock, until: float
) -> Iterator[Mutant]:
    """The mutants, counted by kind, until the monotonic clock reaches `until`."""
    for mutant in stream:
        if time.monotonic() >= until:
            return
        with lock:
            kinds[mutant.kind] += 1
        yield mutant


def ingest(
    database: str, per_protocol: int, seed: int, max_seconds: float = float("inf")
) -> IngestRun:
    """Start a node on `database` ("sqlite" or "postgresql"), send `per_protocol` mutants by
    C-STORE and as many by STOW-RS at the same time (for at most `max_seconds`), stop it,
    check its disk and index."""
    folder = WORK / database
    shutil.rmtree(folder, ignore_errors=True)
    url = _fresh_pg() if database == "postgresql" else f"sqlite:///{folder / 'index.db'}"
    node = LiveNode(folder, url)
    kinds: Counter[str] = Counter()
    lock = threading.Lock()
    try:
        node.cli("db", "upgrade")
        node.start()
        target = Target("127.0.0.1", node.dimse_port, node.http_port)
        sources = corpus()
        until = time.monotonic() + max_seconds
        by_dimse = _counted(mutants(sources, seed, per_protocol, DATASET_KINDS), kinds, lock, until)
        by_web = _counted(
            mutants(sources, seed + 1, per_protocol, DATASET_KINDS + META_KINDS),
            kinds,
            lock,
            until,
        )
        result: dict[str, Tally] = {}
        started = time.monotonic()
        web = threading.Thread(target=lambda: result.setdefault("stow", send_stow(target, by_web)))
        web.start()
        result["cstore"] = send_cstore(target, by_dimse, folder / "send", associations=3)
        web.join()
        run = IngestRun(database, result["cstore"], result["stow"], kinds)
        run.seconds = time.monotonic() - started
        run.alive = node.alive()
        run.exit_code = node.stop()
        run.consistency = check(url)
        run.logged_errors = _logged_errors(node.log)
    finally:
        node.stop()
        if database == "postgresql":
            _drop_pg()
    shutil.copyfile(node.log, WORK / f"{database}-serve.log")  # kept for reading
    shutil.rmtree(folder, ignore_errors=True)
    return run


_LOGGED = re.compile(r"\b(ERROR|CRITICAL) ([\w.]+)")


def _logged_errors(log: Path) -> Counter[str]:
    """ERROR and CRITICAL lines of the node's log, by level and logger."""
    found: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        m = _LOGGED.search(line)
        if m:
            found[f"{m.group(1)} {m.group(2)}"] += 1
    return found


def run(quick: bool = False) -> str:
    """Run the fuzzers and the mutated ingest; the markdown section for bench/RELIABILITY.md."""
    examples = _setting("RELIABILITY_FUZZ_EXAMPLES", 500 if quick else 5_000)
    seconds = _setting("RELIABILITY_FUZZ_SECONDS", 10 if quick else 120)
    total = _setting("RELIABILITY_FUZZ_MUTANTS", 2_000 if quick else 100_000)
    seed = SEED if quick else int(time.time()) % 100_000
    started = time.monotonic()
    props, output = properties(examples, seed)
    props_seconds = time.monotonic() - started
    covered = coverage(seconds, seed)
    if not props or not all(p.passed for p in props):
        (WORK / "fuzz_output.txt").parent.mkdir(parents=True, exist_ok=True)
        (WORK / "fuzz_output.txt").write_text(output)
    databases = ["sqlite", "postgresql"] if _pg_reachable() else ["sqlite"]
    per_protocol = total // (2 * len(databases))
    runs = [ingest(db, per_protocol, seed + 10 * i) for i, db in enumerate(databases)]
    return report(props, props_seconds, examples, seed, runs, covered)


def _setting(name: str, default: int) -> int:
    """An integer from the environment, else `default`."""
    return int(os.environ.get(name) or default)


def _status_list(refused: Counter[str]) -> str:
    return ", ".join(f"{status} {n:,}" for status, n in sorted(refused.items())) or "none"


def report(
    props: list[PropertyRun],
    props_seconds: float,
    examples: int,
    seed: int,
    runs: list[IngestRun],
    covered: list[CoverageRun] | None,
) -> str:
    """The markdown section."""
    lines = [
        "## Fuzzing and mutated datasets",
        "",
        f"Hypothesis property tests (`tests/reliability/test_fuzz_*.py`), {examples:,} examples "
        f"each ({max(20, examples // 10):,} for those that go through the HTTP application), "
        f"seed {seed}, {props_seconds:.0f} s in all. Each property: the code under test answers "
        "a result or the archive's own refusal (InvalidDataset, MalformedMultipart, BadRequest: "
        "HTTP 400), never another exception, and no example takes over 5 s (a hang). `make "
        "test` runs the same properties with 120 examples each, derandomized.",
        "",
        "| property | examples | invalid | seconds | held |",
        "|---|---:|---:|---:|---|",
    ]
    for p in props:
        lines.append(
            f"| `{p.name}` | {p.examples:,} | {p.invalid:,} | {p.seconds:.1f} | "
            f"{'yes' if p.passed else '**no**'} |"
        )
    if not props:
        lines.append("| (the fuzz tests did not run: see bench/work/reliability-fuzz) | | | | |")
    lines += ["", *coverage_report(covered)]
    lines += [
        "",
        "Mutated datasets: real files of pydicom's test files and pydicom-data (up to 128 KB, "
        f"{len(corpus())} files) each under a SOP Instance UID of its own, damaged one way each "
        "(flipped bytes, inserted bytes, truncation, one element's length set to undefined, "
        "huge, odd, zero or a little off, two or three of these together; for STOW-RS also the "
        "File Meta group length broken or File Meta bytes flipped), sent to a `hounsfield serve` "
        "process by C-STORE (pynetdicom, 100 to an association, 3 associations at a time, the "
        "bytes as they are) and at "
        "the same time by STOW-RS (10 parts to a request). A C-ECHO and GET /health after each "
        "association and every 10 requests. Counted as unexpected: Processing Failure "
        "(0x0110, an internal error), any status that is not a defined refusal, an HTTP status "
        "other than 200/202/409, a response that does not account for every part, no answer "
        "within 30 s.",
        "",
        "| database | protocol | sent | accepted | refused (status: count) | unexpected | "
        "no answer | slowest answer | probes failed | seconds | per second |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        for name, t in (("C-STORE", r.cstore), ("STOW-RS", r.stow)):
            rate = t.sent / t.seconds if t.seconds else 0.0
            lines.append(
                f"| {r.database} | {name} | {t.sent:,} | {t.accepted:,} | "
                f"{_status_list(t.refused)} | {len(t.unexpected)} | {t.no_answer} | "
                f"{t.slowest:.2f} s | {len(t.probe_failures)} of {t.probes} | "
                f"{t.seconds:.0f} | {rate:.0f} |"
            )
    lines += [
        "",
        "| database | mutants by kind | node alive at the end | exit on SIGTERM | errors "
        "logged | files on disk | file rows | instances | partial or inconsistent |",
        "|---|---|---|---|---|---:|---:|---:|---|",
    ]
    for r in runs:
        c = r.consistency or Consistency()
        kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(r.kinds.items()))
        counts = [f"{what} {len(items)}" for what, items in c.named.items() if items]
        logged = ", ".join(f"{k} {n}" for k, n in sorted(r.logged_errors.items())) or "none"
        lines.append(
            f"| {r.database} | {kinds} | {'yes' if r.alive else '**no**'} | {r.exit_code} | "
            f"{logged} | {c.files_on_disk:,} | {c.file_rows:,} | {c.instances:,} | "
            f"{', '.join(counts) or 'none'} |"
        )
    unsendable = sum(r.cstore.unsendable for r in runs)
    if unsendable:
        lines += [
            "",
            f"Not sent: {unsendable:,} C-STORE mutant{'' if unsendable == 1 else 's'} that "
            "pynetdicom, the sending client, cannot read to send (its File Meta reader fails "
            "on a first element cut inside its header); STOW-RS sends such bytes as they are.",
        ]
    unexpected = [u for r in runs for t in (r.cstore, r.stow) for u in t.unexpected]
    problems = [p for r in runs for p in (r.consistency or Consistency()).problems]
    failures = [f for r in runs for t in (r.cstore, r.stow) for f in t.probe_failures]
    if unexpected or problems or failures:
        lines += ["", "First findings:", ""]
        lines += [f"- {item}" for item in unexpected[:10] + problems[:10] + failures[:10]]
    lines += [
        "",
        "Checked afterwards, with the node stopped: no temporary file left, every file under "
        "the storage has a file row, every file row's file exists with its size and SHA-256 "
        "and parses with the SOP Instance UID of its instance row, every instance has a file, "
        "and every series' and study's instance counter matches its rows.",
        "",
    ]
    return "\n".join(lines)


def coverage_report(covered: list[CoverageRun] | None) -> list[str]:
    """The lines about the coverage-guided runs."""
    if covered is None:
        return ["Coverage-guided fuzzing: not run (`pip install atheris` to run it)."]
    lines = [
        "Coverage-guided fuzzing with atheris (libFuzzer), the archive's and pydicom's code "
        "instrumented, seeded with the corpus files (`bench/reliability/coverage_fuzz.py`): "
        "scan = the dataset scanner, parse = parse_header, the UID checks and the index text, "
        "part10 = the File Meta splitter of STOW-RS and import, multipart = the STOW-RS body "
        "reader, qido = the QIDO-RS parameter parser. A crash is any exception other than the "
        "archive's refusal, or an input that takes over 5 s.",
        "",
        "| target | inputs tried | seconds | edges covered | features | crashed |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for c in covered:
        lines.append(
            f"| {c.target} | {c.runs:,} | {c.seconds:.0f} | {c.coverage:,} | {c.features:,} | "
            f"{'**yes**' if c.crashed else 'no'} |"
        )
    return lines


def main() -> None:
    """`python -m bench.reliability.fuzz_part [--quick]`: run and save fuzz_results.md."""
    text = run(quick="--quick" in sys.argv)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
