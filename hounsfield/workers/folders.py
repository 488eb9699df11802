"""File work items: import one file from an incoming folder, reinventory one study folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from hounsfield.archive.importer import import_file
from hounsfield.lifecycle.reinventory import reinventory_study
from hounsfield.storage.atomic import write_atomic
from hounsfield.workers.registry import register
from hounsfield.workqueue.items import Done, WorkItem
from hounsfield.workqueue.kinds import IMPORT_FILE, REINVENTORY_STUDY

if TYPE_CHECKING:
    from hounsfield.archive.context import Archive


@register(IMPORT_FILE)
def process_import(archive: Archive, item: WorkItem) -> Done:
    """Store a file from an incoming folder, then remove it; a refused one goes to quarantine
    next to a `.reason.txt` file saying why."""
    path = Path(item.payload["path"])
    if not path.exists():
        return Done("already imported")
    result = import_file(archive, path, partition=item.payload["partition"])
    if result.outcome != "rejected":
        path.unlink(missing_ok=True)
        return Done(result.outcome)
    if "cannot read" in result.reason:
        raise OSError(result.reason)  # transient: retried after the back-off
    quarantine = Path(item.payload["quarantine"])
    quarantine.mkdir(parents=True, exist_ok=True)
    target = quarantine / path.name
    write_atomic(target.with_name(target.name + ".reason.txt"), [result.reason.encode() + b"\n"])
    os.replace(path, target)
    return Done(f"quarantined: {result.reason}")


@register(REINVENTORY_STUDY)
def process_reinventory(archive: Archive, item: WorkItem) -> Done:
    """Index the files of one study folder that the index does not know."""
    done = reinventory_study(archive, item.payload["filesystem"], item.payload["folder"])
    return Done(
        f"indexed {done.indexed}, known {done.known}, refused {done.refused}, "
        f"removed {done.removed}"
    )
