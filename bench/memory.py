"""Memory and CPU of a server process tree, read from /proc."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

TICKS = os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                children = Path(f"/proc/{current}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            todo.extend(int(c) for c in children)
    return out


def tree_rss_mb(pid: int) -> float:
    """Resident memory of the process tree in MB."""
    return sum(_status_kb(p, "VmRSS") for p in descendants(pid)) / 1024


def peak_rss_mb(pid: int) -> float:
    """The kernel's high-water mark of resident memory (VmHWM) of `pid`, in MB."""
    return _status_kb(pid, "VmHWM") / 1024


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of the process tree so far."""
    user = system = 0
    for p in descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime
    return user / TICKS, system / TICKS


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the process tree so far."""
    return sum(cpu_split(pid))


class RssSampler:
    """Samples the tree's RSS in a background thread; `peak_mb` is the highest sample."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval = pid, interval
        self.peak_mb = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))
