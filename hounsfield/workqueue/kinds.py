"""Every work-item kind the archive knows, declared as data: priority, retries, study lock."""

from __future__ import annotations

from hounsfield.workqueue.items import Kind, Priority

KINDS: dict[str, Kind] = {}


def define(kind: Kind) -> Kind:
    """Make a kind known (idempotent for the same definition)."""
    KINDS[kind.name] = kind
    return kind


def kind_of(name: str) -> Kind:
    """The definition of a kind; unknown kinds get the defaults."""
    return KINDS.get(name) or Kind(name)


PROCESS_STUDY = define(Kind("process-study", max_retries=5, backoff_seconds=30, study_lock="read"))
IMPORT_FILE = define(Kind("import-file", Priority.NORMAL, max_retries=3, backoff_seconds=30))
REINVENTORY_STUDY = define(
    Kind("reinventory-study", Priority.LOW, max_retries=3, backoff_seconds=60)
)
MIGRATE_STUDY = define(
    Kind("migrate-study", Priority.HIGH, max_retries=5, backoff_seconds=60, study_lock="write")
)
DELETE_STUDY = define(
    Kind("delete-study", Priority.HIGH, max_retries=5, backoff_seconds=60, study_lock="write")
)
COPY_STUDY = define(
    Kind("copy-study", Priority.NORMAL, max_retries=5, backoff_seconds=300, study_lock="write")
)
PURGE_STUDY = define(
    Kind("purge-study", Priority.HIGH, max_retries=5, backoff_seconds=60, study_lock="write")
)
COMPRESS_STUDY = define(
    Kind(
        "compress-study",
        Priority.LOW,
        max_retries=3,
        backoff_seconds=300,
        study_lock="write",
        heavy=True,
    )
)
# Storage commitment: the N-EVENT-REPORT to the requestor, retried on any node until it lands.
COMMITMENT_REPORT = define(
    Kind("commitment-report", Priority.HIGH, max_retries=8, backoff_seconds=10)
)
# Forwarding: a study (or series) to one destination; retries and dead-lettering follow the
# node's forward_* settings (the processor says when), not the kind's defaults.
FORWARD_STUDY = define(Kind("forward-study", Priority.NORMAL, max_retries=20, backoff_seconds=30))
# On receipt: apply the forward rules that trigger on receipt to a study still arriving.
ROUTE_STUDY = define(Kind("route-study", Priority.HIGH, max_retries=5, backoff_seconds=10))
# Mirrors: copy a study's files to the asynchronous mirror of their filesystem (queued with the
# index rows of each stored object); verification: re-read a range of files and repair them.
MIRROR_STUDY = define(
    Kind("mirror-study", Priority.HIGH, max_retries=10, backoff_seconds=30, study_lock="write")
)
VERIFY_FILES = define(Kind("verify-files", Priority.LOW, max_retries=3, backoff_seconds=300))
# Reconciliation with a peer: compare, repair, compare again (may run for hours; any node).
RECONCILE = define(Kind("reconcile", Priority.LOW, max_retries=3, backoff_seconds=300))
NOOP = define(Kind("noop", priority=Priority.LOW, max_retries=0))
