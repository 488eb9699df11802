"""File services: Filesystem Reinventory and Import DICOM Files (incoming folders)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hounsfield.db import engine as db
from hounsfield.lifecycle.reinventory import partition_folders, study_folders
from hounsfield.scheduled.registry import Run, service
from hounsfield.storage.layout import partition_folder
from hounsfield.storage.tiers import list_filesystems
from hounsfield.workqueue.queue import enqueue

INCOMING_SUFFIX = "_Incoming"
QUARANTINE_SUFFIX = "_Quarantine"
CHECKPOINT_EVERY = 100


@service("filesystem-reinventory", interval_seconds=86400, enabled=False)
def reinventory(run: Run) -> str:
    """Scan every enabled filesystem and queue the indexing of study folders (resumable from
    the last folder queued); disables itself after one complete run."""
    partitions = partition_folders(run.archive)
    queued = 0
    for fs in list_filesystems(run.archive.engine):
        if not fs.enabled:
            continue
        cursor = run.state.get(str(fs.pk), "")
        for n, folder in enumerate(study_folders(Path(fs.path), partitions)):
            if folder <= cursor:
                continue
            with db.write(run.archive.engine) as conn:
                enqueue(
                    conn,
                    "reinventory-study",
                    {"filesystem": fs.pk, "folder": folder},
                    coalesce_key=f"reinventory-study:{fs.pk}:{folder}",
                )
            queued += 1
            run.state[str(fs.pk)] = folder
            if n % CHECKPOINT_EVERY == 0:
                run.checkpoint()
    run.state.clear()
    run.disable_after = True
    return f"queued {queued} study folders"


def incoming_folder(root: Path, ae_title: str) -> Path:
    """The incoming folder of a partition on a filesystem."""
    return root / (partition_folder(ae_title) + INCOMING_SUFFIX)


@service("import-files", interval_seconds=30)
def import_files(run: Run) -> str:
    """Queue the import of files dropped in each partition's `<AE>_Incoming` folder on the
    tier-1 filesystems (files still being written, changed in the last seconds, wait)."""
    settle = run.archive.settings.import_settle_seconds
    titles = run.archive.partition_titles()
    queued = 0
    for fs in list_filesystems(run.archive.engine):
        if fs.tier != 1 or not fs.enabled or fs.read_only or fs.is_mirror:
            continue
        root = Path(fs.path)
        for title in titles:
            incoming = incoming_folder(root, title)
            incoming.mkdir(parents=True, exist_ok=True)
            quarantine = root / (partition_folder(title) + QUARANTINE_SUFFIX)
            for dirpath, _dirs, names in os.walk(incoming):
                for name in sorted(names):
                    path = Path(dirpath) / name
                    if name.startswith(".") or time.time() - path.stat().st_mtime < settle:
                        continue
                    with db.write(run.archive.engine) as conn:
                        pk = enqueue(
                            conn,
                            "import-file",
                            {
                                "path": str(path),
                                "partition": title,
                                "quarantine": str(quarantine),
                            },
                            coalesce_key=f"import-file:{path}",
                        )
                    queued += pk is not None
    return f"queued {queued} files"
