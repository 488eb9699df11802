"""Kill -9 of a node during ingest, three times: every acknowledged instance is indexed once
with an intact file, no row lacks its file, and reinventory takes every file without a row
(the short form of `make reliability`'s kill part)."""

from __future__ import annotations

from pathlib import Path

from bench.reliability.kill_part import kill_cycles


def test_kill_cycles_lose_nothing_acknowledged(tmp_path: Path, database_url: str) -> None:
    url = None if database_url.startswith("sqlite") else database_url  # SQLite: the default
    outcome = kill_cycles(tmp_path, url, cycles=3, senders=2, uptime=(1.0, 2.5))
    assert outcome.acked, "no instance was acknowledged"
    assert outcome.sender_stats["broken"] >= 1, "no kill hit an association"
    assert not outcome.lost_before, outcome.lost_before[:5]
    assert not outcome.before.duplicated and not outcome.before.row_problems, (
        outcome.before.row_problems[:5]
    )
    assert not outcome.after.rowless, outcome.after.rowless[:5]
    assert not outcome.after.row_problems, outcome.after.row_problems[:5]
    assert not outcome.lost
    assert outcome.senders_finished and not outcome.problems, outcome.problems[:5]
