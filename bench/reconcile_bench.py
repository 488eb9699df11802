"""The reconcile part: a Hounsfield HQ node reconciling a month with a clinic's Orthanc."""

from __future__ import annotations

import json
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import reconcile_ops as ops
from bench.procs import LOCALHOST, free_port, run
from bench.reconcile_corpus import Month
from bench.servers import Server, hounsfield_command, start_hounsfield, start_orthanc, wait_ready
from bench.settings import REPO_DIR, BenchSettings

PARTITION, PEER = "CLINIC", "ORTHANC"
GAP_PERCENT = 1.0
# Study processing (metadata, rules), which every arrival and deletion schedules, waits an
# hour instead of 60 s, so that it never runs while something is timed.
NODE_ENV = {"HOUNSFIELD_STUDY_SETTLE_SECONDS": "3600"}
IMPORT_ENV = {"HOUNSFIELD_FSYNC": "false"}  # the untimed loading import only
RACE = "Received unexpected C-FIND service message"  # pynetdicom dropped a response


@dataclass(frozen=True)
class Pass:
    """One `hounsfield reconcile` run: wall time, timed phases, the report it printed."""

    seconds: float
    phases: list[dict[str, Any]]
    finds: int
    report: dict[str, Any]
    dropped: int  # pynetdicom's RACE warnings in its output
    wrong: str  # what in the report differs from what the benchmark set up ("": nothing)

    def phase(self, name: str, nth: int = 0) -> float | None:
        """Seconds of the `nth` phase called `name`."""
        found = [p["seconds"] for p in self.phases if p["phase"] == name]
        return float(found[nth]) if len(found) > nth else None


@dataclass
class ReconcileResults:
    """What the reconcile part measured; lists hold one entry per run."""

    month: Month | None = None
    gap: int = 0
    gap_studies: int = 0
    load: dict[str, float] = field(default_factory=dict)
    entry_point: float | None = None  # the untimed warm-up, by the `hounsfield` script
    count: list[Pass] = field(default_factory=list)
    fetch: list[Pass] = field(default_factory=list)
    manual: list[ops.Listing] = field(default_factory=list)
    move: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    load_average: list[float] = field(default_factory=list)


def median(values: list[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def _clinic(hq: Server) -> dict[str, object]:
    """Orthanc as the clinic's archive: HQ's partition is a C-MOVE destination; writes are
    not fsynced (only the untimed loading writes)."""
    return {"DicomModalities": {"HQ": [PARTITION, LOCALHOST, hq.port]}, "SyncStorageArea": False}


def _load(hq: Server, oc: Server, month: Month, timeout: float) -> dict[str, float]:
    """Orthanc by storescu and HQ's partition by `hounsfield import`, at the same time."""
    cli = hounsfield_command()
    for step in (["partition", "add", PARTITION], ["device", "add", PEER, LOCALHOST, str(oc.port)]):
        run([cli, *step], timeout, hq.env, hq.folder.parent).check()
    wait_ready(replace(hq, ae_title=PARTITION))
    folders = sorted({str(Path(i.path).parent.parent) for i in month.items})
    args = [cli, "import", "--partition", PARTITION, *folders]
    with ThreadPoolExecutor(2) as pool:
        imported = pool.submit(run, args, timeout, hq.env | IMPORT_ENV, hq.folder.parent)
        orthanc = ops.load_orthanc(oc, month, timeout)
        hq_seconds = imported.result().check().seconds
    if (held := ops.orthanc_instances(oc)) != len(month.items):
        raise RuntimeError(f"Orthanc holds {held} instances, {len(month.items)} were sent")
    return {"Orthanc (storescu, 4 associations)": orthanc, "HQ (hounsfield import)": hq_seconds}


def _reconcile(hq: Server, month: Month, extra: list[str], timeout: float) -> Pass:
    """`hounsfield reconcile` through bench.reconcile_timer (same app and arguments)."""
    phases = hq.folder.parent / "phases.json"
    phases.unlink(missing_ok=True)
    args = [sys.executable, "-m", "bench.reconcile_timer", str(phases), "reconcile", PARTITION]
    args += ["--with", PEER, "--from", month.date_from, "--to", month.date_to, "--json", *extra]
    done = run(args, timeout, hq.env, REPO_DIR)
    try:
        report = json.loads(done.stdout)
        timed = json.loads(phases.read_text())
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"reconcile (exit {done.returncode}): {done.stderr[-1500:]}") from exc
    dropped = (done.stdout + done.stderr).count(RACE)
    return Pass(done.seconds, timed["phases"], timed["finds"], report, dropped, "")


def _check(found: Pass, expect: dict[str, int]) -> Pass:
    """`found`, with what in its report differs from `expect` (and a state not complete)."""
    report = found.report
    wrong = [f"{k} {report.get(k)} (expected {v})" for k, v in expect.items() if report.get(k) != v]
    if report.get("state") != "complete":
        wrong.insert(
            0, f"state {report.get('state')}: {report.get('error') or report.get('notes')}"
        )
    return replace(found, wrong="; ".join(wrong))


def _count_pass(hq: Server, month: Month, timeout: float) -> Pass:
    n = len(month.items)
    expect = {"local_instances": n, "peer_instances": n, "missing": 0, "extra": 0}
    return _check(_reconcile(hq, month, [], timeout), expect)


def _say(what: str, seconds: float, wrong: str = "") -> None:
    print(f"      {what}: {seconds:.2f}s" + (f"  WRONG: {wrong}" if wrong else ""), flush=True)


def _round(out: ReconcileResults, hq: Server, oc: Server, queries: list[Path], t: float) -> None:
    """Count pass; gap, manual listing, fetch; gap, plain C-MOVE."""
    assert out.month is not None
    month, gap = out.month, out.month.gap(GAP_PERCENT)
    out.count.append(_count_pass(hq, month, t))
    _say("count pass", out.count[-1].seconds, out.count[-1].wrong)
    ops.delete_at_hq(hq, PARTITION, gap)
    listed = ops.list_by_hand(oc, hq, PARTITION, month.days, t)
    out.manual.append(listed)
    ok = listed.missing == {i.sop for i in gap} and not listed.extra
    _say("by hand", listed.seconds, "" if ok else f"{len(listed.missing)} missing listed")
    g = len(gap)
    expect = {"missing": g, "extra": 0, "fetched": g, "missing_left": 0, "extra_left": 0}
    out.fetch.append(_check(_reconcile(hq, month, ["--fetch"], t), expect))
    _say("reconcile --fetch", out.fetch[-1].seconds, out.fetch[-1].wrong)
    ops.delete_at_hq(hq, PARTITION, gap)
    out.move.append(ops.move(oc, PARTITION, queries, t))
    _say("movescu", out.move[-1])


def measure(settings: BenchSettings, out: ReconcileResults, month: Month) -> None:
    """Start HQ and the clinic's Orthanc, load both, then `reconcile_repeats` rounds."""
    out.month, timeout = month, settings.timeout
    gap = month.gap(GAP_PERCENT)
    out.gap, out.gap_studies = len(gap), len({i.study for i in gap})
    work = settings.work_dir / "reconcile"
    hq = start_hounsfield(work, free_port(), timeout, settings.postgres, extra_env=NODE_ENV)
    oc: Server | None = None
    try:
        wait_ready(hq)
        oc = start_orthanc(work, free_port(), overrides=_clinic(hq))
        wait_ready(oc)
        out.load = _load(hq, oc, month, timeout)
        print("    loaded: " + ", ".join(f"{k} {v:.0f}s" for k, v in out.load.items()), flush=True)
        cli = hounsfield_command()
        args = [cli, "reconcile", PARTITION, "--with", PEER, "--from", month.date_from]
        out.entry_point = run([*args, "--to", month.date_to], timeout, hq.env, work).seconds
        queries = ops.move_queries(gap, work / "move-queries")
        for n in range(settings.reconcile_repeats):
            print(f"    round {n + 1} of {settings.reconcile_repeats}", flush=True)
            _round(out, hq, oc, queries, timeout)
        last = _count_pass(hq, month, timeout)  # the last movescu brought everything back
        if last.wrong:
            out.errors.append(f"after the last movescu, the count pass found: {last.wrong}")
    finally:
        if oc is not None:
            oc.stop()
        hq.stop()
