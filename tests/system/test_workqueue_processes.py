"""The WorkQueue across real processes: two workers on PostgreSQL, a worker killed with -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import tests.workqueue_worker  # noqa: F401  (registers the test kinds here too)
from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.workers.runner import Worker
from hounsfield.workqueue import admin
from hounsfield.workqueue.queue import enqueue

ROOT = Path(__file__).resolve().parents[2]


def _worker(archive: Archive, out: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.workqueue_worker",
            archive.settings.database_url or "",
            str(archive.settings.data_dir),
            str(out),
            *args,
        ],
        cwd=ROOT,
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_processes_run_each_item_exactly_once(archive: Archive, tmp_path: Path) -> None:
    with db.write(archive.engine) as conn:
        pks = [enqueue(conn, "test-append", {"n": n}) for n in range(1000)]
    outs = [tmp_path / "a.txt", tmp_path / "b.txt"]
    procs = [_worker(archive, out, "--node", out.stem) for out in outs]
    assert [p.wait(timeout=240) for p in procs] == [0, 0]
    runs = Counter(int(line) for out in outs for line in out.read_text().split())
    assert set(runs) == set(pks)
    assert max(runs.values()) == 1
    assert all(out.read_text() for out in outs), "both processes took a share"
    assert admin.counts(archive.engine) == {"completed": 1000}


def test_item_of_a_killed_process_is_reclaimed_and_finished(
    archive: Archive, tmp_path: Path
) -> None:
    with db.write(archive.engine) as conn:
        pk = enqueue(conn, "test-hang")
    marker = tmp_path / "started"
    proc = _worker(archive, marker, "--node", "doomed", "--lease", "1", "--threads", "1")
    deadline = time.monotonic() + 60
    # the worker creates the file, then writes the item's key: wait for the key
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == str(pk)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert admin.get_item(archive.engine, pk).status == "in_progress"
    worker = Worker(archive, threads=1, processes=0)
    while worker.run_one() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # until the dead process's lease runs out
    item = admin.get_item(archive.engine, pk)
    assert item.status == "completed"
    assert item.result == f"finished by {archive.settings.node_name}"
    assert item.failure_count == 1 and "doomed" in item.error
