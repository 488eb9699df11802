"""A worker process for the multi-process WorkQueue tests: `python -m tests.workqueue_worker`."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from hounsfield.archive.context import Archive, open_archive
from hounsfield.settings import Settings
from hounsfield.workers.registry import register
from hounsfield.workers.runner import Worker
from hounsfield.workqueue.items import Done, Kind, WorkItem

OUT: dict[str, Path] = {}


@register(Kind("test-append", max_retries=0))
def _append(_archive: Archive, item: WorkItem) -> Done:
    fd = os.open(OUT["path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{item.pk}\n".encode())
    finally:
        os.close(fd)
    return Done()


@register(Kind("test-hang", max_retries=3))
def _hang(archive: Archive, item: WorkItem) -> Done:
    if archive.settings.node_name == "doomed":
        OUT["path"].write_text(str(item.pk))
        time.sleep(3600)
    return Done(f"finished by {archive.settings.node_name}")


def main() -> None:
    """Run the queue until it is idle, or forever with --serve."""
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--node", default="worker")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--lease", type=float, default=60.0)
    parser.add_argument("--processes", type=int, default=0)
    args = parser.parse_args()
    OUT["path"] = args.out
    settings = Settings(
        data_dir=args.data_dir,
        database_url=args.database_url,
        node_name=args.node,
        queue_lease_seconds=args.lease,
        storage_reserve_bytes=0,
    )
    archive = open_archive(settings)
    try:
        Worker(archive, threads=args.threads, processes=args.processes).run_until_idle()
    finally:
        archive.close()


if __name__ == "__main__":
    main()
