"""A WorkQueue worker process for the queue part: opens the archive, waits for `go`, drains."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from hounsfield.archive.context import open_archive
from hounsfield.settings import Settings
from hounsfield.workers.runner import Worker


def main() -> None:
    """Print `ready`, wait for a line on stdin, run the queue until idle, print the figures.

    The draining is what `hounsfield queue work` does (`Worker(...).run_until_idle()`); the
    process start-up and the archive opening happen before the clock starts.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--node", default="bench")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings(
        data_dir=args.data_dir,
        database_url=args.database_url,
        node_name=args.node,
        storage_reserve_bytes=0,
    )
    archive = open_archive(settings)
    try:
        worker = Worker(archive, threads=args.threads)
        print("ready", flush=True)
        sys.stdin.readline()
        started, cpu = time.time(), time.process_time()
        done = worker.run_until_idle()
        ended, cpu = time.time(), time.process_time() - cpu
    finally:
        archive.close()
    figures = {"items": done, "start": started, "end": ended, "cpu": cpu, "threads": worker.threads}
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
