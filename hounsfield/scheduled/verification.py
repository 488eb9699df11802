"""Storage Verification: queue the re-reading of every stored file, filesystem by filesystem."""

from __future__ import annotations

from sqlalchemy import select

from hounsfield.db import engine as db
from hounsfield.db.tables import file
from hounsfield.scheduled.registry import Run, service
from hounsfield.storage.tiers import list_filesystems
from hounsfield.workqueue.kinds import VERIFY_FILES
from hounsfield.workqueue.queue import enqueue

RANGE = 500  # files per verify-files item


@service("storage-verification", interval_seconds=7 * 86400, enabled=False)
def storage_verification(run: Run) -> str:
    """Queue the verification of every file on every enabled filesystem (mirrors included),
    in ranges of files, resuming from the last range queued; each verify-files item checks
    size and SHA-256, repairs a bad or missing file from a good copy and raises alerts."""
    engine = run.archive.engine
    items = files = 0
    for fs in list_filesystems(engine):
        if not fs.enabled:
            continue
        after = int(run.state.get(str(fs.pk), 0))
        while True:
            with db.write(engine) as conn:
                pks = conn.scalars(
                    select(file.c.pk)
                    .where(file.c.filesystem_pk == fs.pk, file.c.pk > after)
                    .order_by(file.c.pk)
                    .limit(RANGE)
                ).all()
                if not pks:
                    break
                enqueue(
                    conn,
                    VERIFY_FILES.name,
                    {"filesystem": fs.pk, "after": after, "through": pks[-1]},
                    coalesce_key=f"{VERIFY_FILES.name}:{fs.pk}:{after}",
                )
            items, files, after = items + 1, files + len(pks), pks[-1]
            run.state[str(fs.pk)] = after
            run.checkpoint()
    run.state.clear()
    return f"queued verification of {files} files in {items} items"
