"""Kill -9 during ingest, cycle after cycle: no acknowledged instance lost, no orphan rows, and
every file without a row one that reinventory picks up."""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.reliability.audit import Audit, age, audit, sqlalchemy_url
from bench.reliability.feeder import Feeders
from bench.reliability.node import LiveNode

PG_SERVER = os.environ.get("HOUNSFIELD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DATABASE = "hounsfield_reliability"  # the only database this part drops


@dataclass
class KillOutcome:
    """One run of kill cycles against one database, and what it left."""

    database: str
    cycles: int
    senders: int
    seconds: float = 0.0
    uptimes: list[float] = field(default_factory=list)  # how long the node ran before each kill
    restarts: list[float] = field(default_factory=list)  # seconds until it answered again
    acked: set[str] = field(default_factory=set)
    sender_stats: dict[str, int] = field(default_factory=dict)
    senders_finished: bool = False
    before: Audit = field(default_factory=Audit)
    after: Audit = field(default_factory=Audit)
    reinventory: str = ""

    @property
    def lost_before(self) -> list[str]:
        """Acknowledged instances not indexed once the node was stopped."""
        return sorted(self.acked - self.before.indexed)

    @property
    def lost(self) -> list[str]:
        """Acknowledged instances not indexed after reinventory."""
        return sorted(self.acked - self.after.indexed)

    @property
    def problems(self) -> list[str]:
        """Everything that breaks the contract, named."""
        out = [f"acknowledged, not indexed: {sop}" for sop in self.lost_before]
        out += [f"after the kills: {p}" for p in self.before.row_problems]
        out += [f"after reinventory: {p}" for p in self.after.row_problems]
        out += [f"left without a row after reinventory: {p}" for p in self.after.rowless]
        if not self.senders_finished:
            out.append("the senders did not get every instance acknowledged in time")
        if self.sender_stats.get("unacknowledged", 0):
            out.append(f"{self.sender_stats['unacknowledged']} instances never acknowledged")
        return out


def fresh_postgres(server_url: str = PG_SERVER) -> str | None:
    """Drop and create the `hounsfield_reliability` database; its URL, or None when no
    PostgreSQL answers."""
    import psycopg

    base = server_url.rsplit("/", 1)[0]
    try:
        with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {PG_DATABASE}")
    except psycopg.OperationalError:
        return None
    return f"{base}/{PG_DATABASE}"


def kill_cycles(
    work: Path,
    database_url: str | None,
    cycles: int,
    senders: int = 3,
    seed: int = 13,
    uptime: tuple[float, float] = (1.0, 4.0),
) -> KillOutcome:
    """Feed a node from `senders` retrying senders and kill -9 its process group `cycles`
    times, each after a random `uptime` once it answers; then let the senders get the rest
    acknowledged, stop the node, audit, run reinventory (files aged past its hour) and
    audit again."""
    kind = "PostgreSQL" if database_url and database_url.startswith("postgres") else "SQLite"
    outcome = KillOutcome(kind, cycles, senders)
    rng = random.Random(seed)
    node = LiveNode(work / "node", database_url)
    node.cli("db", "upgrade")
    started = time.monotonic()
    node.start()
    feeders = Feeders(senders, node.dimse_port, work / "feed", seed)
    feeders.start()
    try:
        for _ in range(cycles):
            outcome.uptimes.append(rng.uniform(*uptime))
            time.sleep(outcome.uptimes[-1])
            node.kill()
            time.sleep(rng.uniform(0.0, 0.5))
            outcome.restarts.append(node.start())
        time.sleep(uptime[0])
        outcome.senders_finished = feeders.finish_and_wait(timeout=300)
    finally:
        feeders.finish_and_wait(timeout=10)
        node.stop()
    outcome.seconds = time.monotonic() - started
    outcome.acked = feeders.acked()
    outcome.sender_stats = feeders.stats()
    url = sqlalchemy_url(database_url, node.data_dir)
    outcome.before = audit(url)
    age(outcome.before.rowless)
    queued = node.cli("services", "run", "filesystem-reinventory").stdout.strip()
    worked = node.cli("queue", "work").stdout.strip()
    outcome.reinventory = f"{queued} / {worked.splitlines()[-1] if worked else ''}".strip(" /")
    outcome.after = audit(url)
    return outcome


def _range(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.1f} to {max(values):.1f} (median {statistics.median(values):.1f})"


def section(outcomes: list[KillOutcome], quick: bool) -> str:
    """The markdown section for the runs."""
    lines = [
        "## Kill -9 during ingest",
        "",
        "A real `hounsfield serve` (with its DIMSE and queue processes, one process group) is"
        " fed by retrying senders (pynetdicom, one process each): each sends new 8 KB CT"
        " instances one after another, writes down every SOP Instance UID the node"
        " acknowledged, and after an abort or a refused association sends again everything"
        " not acknowledged. The node is killed with SIGKILL on its process group at a random"
        " moment, restarted at once, and so on. After the last cycle the senders get the rest"
        " acknowledged, the node is stopped, and the index is compared with the storage file"
        " by file (SHA-256 and parse of every indexed file). Files without a row are then"
        " aged past reinventory's one-hour guard and `hounsfield services run"
        " filesystem-reinventory` + `hounsfield queue work` run; the comparison is repeated.",
        "",
        f"Form: {'short (`RELIABILITY_QUICK=1`)' if quick else 'long'}.",
        "",
        "| | " + " | ".join(o.database for o in outcomes) + " |",
        "|---|" + "---|" * len(outcomes),
    ]
    rows: list[tuple[str, list[str]]] = [
        ("kill cycles", [str(o.cycles) for o in outcomes]),
        ("senders", [str(o.senders) for o in outcomes]),
        ("run time", [f"{o.seconds:.0f} s" for o in outcomes]),
        ("node up before each kill (s)", [_range(o.uptimes) for o in outcomes]),
        ("restart until it answers (s)", [_range(o.restarts) for o in outcomes]),
        ("instances acknowledged", [str(len(o.acked)) for o in outcomes]),
        ("C-STORE attempts", [str(o.sender_stats.get("attempts", 0)) for o in outcomes]),
        ("associations opened", [str(o.sender_stats.get("associations", 0)) for o in outcomes]),
        ("associations broken by a kill", [str(o.sender_stats.get("broken", 0)) for o in outcomes]),
        ("instances re-sent", [str(o.sender_stats.get("resent", 0)) for o in outcomes]),
        ("acknowledged but not indexed", [str(len(o.lost_before)) for o in outcomes]),
        ("indexed more than once", [str(len(o.before.duplicated)) for o in outcomes]),
        (
            "index rows without a complete file",
            [
                str(len(o.before.without_file) + len(o.before.missing) + len(o.before.damaged))
                for o in outcomes
            ],
        ),
        ("wrong counters, empty series", [str(len(o.before.wrong_counters)) for o in outcomes]),
        ("files after the kills", [str(o.before.files) for o in outcomes]),
        (
            "… temporary files of interrupted writes",
            [str(len(o.before.temporary)) for o in outcomes],
        ),
        (
            "… renamed, object not indexed (never acknowledged)",
            [str(len(o.before.unindexed_new)) for o in outcomes],
        ),
        (
            "… renamed, object indexed in another file",
            [str(len(o.before.unindexed_stale)) for o in outcomes],
        ),
        ("reinventory", [o.reinventory.replace("\n", " ") or "-" for o in outcomes]),
        ("files without a row after reinventory", [str(len(o.after.rowless)) for o in outcomes]),
        ("acknowledged lost after reinventory", [str(len(o.lost)) for o in outcomes]),
        ("index problems after reinventory", [str(len(o.after.row_problems)) for o in outcomes]),
    ]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    problems = [f"- {o.database}: {p}" for o in outcomes for p in o.problems[:20]]
    lines += ["", "Result: " + ("**failures**:" if problems else "0 acknowledged instances lost.")]
    lines += problems
    return "\n".join(lines) + "\n"


def run(quick: bool = False) -> str:
    """Kill cycles on SQLite and, when one answers, PostgreSQL: 20 cycles each (3 quick)."""
    cycles, senders = (3, 3) if quick else (20, 4)
    outcomes: list[KillOutcome] = []
    with tempfile.TemporaryDirectory(prefix="hf-kill-") as tmp:
        outcomes.append(kill_cycles(Path(tmp) / "sqlite", None, cycles, senders))
        pg = fresh_postgres()
        if pg is not None:
            outcomes.append(kill_cycles(Path(tmp) / "pg", pg, cycles, senders))
    return section(outcomes, quick)
