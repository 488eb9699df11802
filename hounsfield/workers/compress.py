"""The compress-study item: compress a study as its rule says, in the process pool."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import delete

from hounsfield.db import engine as db
from hounsfield.db.tables import study_outcome
from hounsfield.lifecycle.compress import compress_study
from hounsfield.workers.registry import register
from hounsfield.workqueue.items import Done, WorkItem
from hounsfield.workqueue.kinds import COMPRESS_STUDY

if TYPE_CHECKING:
    from hounsfield.archive.context import Archive

DEFAULT_SYNTAX = {"lossless-compress": "jpeg2000-lossless", "lossy-compress": "jpeg2000"}


@register(COMPRESS_STUDY)
def process_compress(archive: Archive, item: WorkItem) -> Done:
    """Compress every object of the study; objects already compressed are skipped."""
    p = item.payload
    params = json.loads(p["params"]) if isinstance(p.get("params"), str) else p.get("params", {})
    action = p.get("action", "lossless-compress")
    name = params.get("syntax") or DEFAULT_SYNTAX.get(action, "jpeg2000-lossless")
    report = compress_study(archive, p["study_pk"], name, ratio=params.get("ratio"))
    if action in DEFAULT_SYNTAX:
        with db.write(archive.engine) as conn:  # done: the service will not queue it again
            conn.execute(
                delete(study_outcome).where(
                    study_outcome.c.study_pk == p["study_pk"], study_outcome.c.action == action
                )
            )
    return Done(str(report))
