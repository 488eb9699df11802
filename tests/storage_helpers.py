"""Helpers for the storage-management tests: distinct studies made from real files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid

from hounsfield.archive.context import Archive
from hounsfield.archive.store import StoreResult, store
from hounsfield.storage.filemeta import split_part10
from hounsfield.workers.runner import Worker
from hounsfield.workqueue import admin
from hounsfield.workqueue.items import WorkItem
from tests.data import local

ROOT = Path(__file__).resolve().parent.parent


def part10_variant(name: str, n: int, study: str | None = None, instance: int = 0) -> bytes:
    """A real test file as a new study (new UIDs and patient), as Part-10 bytes; with `study`,
    as instance number `instance` of that study instead."""
    ds = dcmread(local(name))
    key = study or f"{name}/{n}"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[key, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[key, name, "series"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[key, name, str(instance), "sop"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = key[:64]
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def store_variant(archive: Archive, name: str, n: int, calling_ae: str = "") -> StoreResult:
    """Store a new study made from a real test file."""
    meta, data = split_part10(part10_variant(name, n))
    return store(archive, str(meta.TransferSyntaxUID), data, calling_ae=calling_ae)


def store_study(archive: Archive, study: str, names: list[str]) -> list[StoreResult]:
    """Store one study whose instances are made from the named real test files."""
    out = []
    for i, name in enumerate(names):
        meta, data = split_part10(part10_variant(name, 0, study=study, instance=i))
        out.append(store(archive, str(meta.TransferSyntaxUID), data))
    return out


def kill_worker_when(archive: Archive, tmp_path: Path, appears: Path, pattern: str) -> None:
    """Run a worker process (1 s leases) and kill -9 it once a file matching `pattern`
    appears under `appears`: the work item it holds is left in progress."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.workqueue_worker",
            archive.settings.database_url or "",
            str(archive.settings.data_dir),
            str(tmp_path / "worker.out"),
            "--node",
            "killed",
            "--lease",
            "1",
            "--threads",
            "1",
        ],
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    try:
        while not any(appears.rglob(pattern)):
            assert proc.poll() is None, "the worker finished before it could be killed"
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.005)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def finish_reclaimed(archive: Archive, pk: int) -> WorkItem:
    """Run the queue here until item `pk`, reclaimed once its lease expired, is finished."""
    worker = Worker(archive, threads=1, processes=0)
    deadline = time.monotonic() + 60
    while admin.get_item(archive.engine, pk).status == "in_progress":
        assert time.monotonic() < deadline
        if worker.run_one() is None:
            time.sleep(0.1)
    return admin.get_item(archive.engine, pk)
