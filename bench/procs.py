"""Child processes: DCMTK tool lookup, free ports, bounded runs, clean termination."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cache
from multiprocessing.process import BaseProcess
from pathlib import Path

LOCALHOST = "127.0.0.1"


@dataclass(frozen=True)
class Completed:
    """A finished command: exit code, output and wall time."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def check(self) -> Completed:
        """Raise with the command and its output if it failed."""
        if self.returncode != 0:
            raise RuntimeError(
                f"command failed ({self.returncode}): {' '.join(self.args)}\n"
                f"stdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}"
            )
        return self


def client_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every child: TCP_NODELAY=1 plus `extra`."""
    env = dict(os.environ)
    env["TCP_NODELAY"] = "1"
    env.update(extra or {})
    return env


@cache
def dcmtk(tool: str) -> str:
    """The DCMTK binary `tool`, skipping same-named pynetdicom scripts of the virtualenv."""
    venv = Path(sys.prefix).resolve()
    for folder in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin"]:
        candidate = Path(folder or ".") / tool
        if not candidate.is_file() or not os.access(candidate, os.X_OK):
            continue
        if candidate.resolve().is_relative_to(venv):
            continue
        try:
            probe = subprocess.run(
                [str(candidate), "--version"], capture_output=True, text=True, timeout=10
            )
        except OSError:
            continue
        if "dcmtk" in probe.stdout.lower():
            return str(candidate)
    raise SystemExit(f"DCMTK's {tool} not found: install dcmtk (make system-deps)")


def which(name: str) -> str:
    """An executable on PATH or a clear failure."""
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found on PATH")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def run(
    args: Sequence[str],
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Completed:
    """Run a command to completion (killed after `timeout` seconds) and time it."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env or client_env(),
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"timed out after {timeout:.0f}s: {' '.join(args)}") from exc
    return Completed(
        list(args), proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - started
    )


def run_parallel(commands: Sequence[Sequence[str]], timeout: float) -> list[Completed]:
    """Start every command at once and wait for all (bounded); `seconds` is the common wall time."""
    with ExitStack() as stack:
        outputs = [
            (
                stack.enter_context(tempfile.TemporaryFile()),
                stack.enter_context(tempfile.TemporaryFile()),
            )
            for _ in commands
        ]
        started = time.perf_counter()
        deadline = started + timeout
        procs = [
            subprocess.Popen(list(c), stdout=o, stderr=e, env=client_env())
            for c, (o, e) in zip(commands, outputs, strict=True)
        ]
        try:
            for args, proc in zip(commands, procs, strict=True):
                try:
                    proc.wait(timeout=max(0.1, deadline - time.perf_counter()))
                except subprocess.TimeoutExpired as exc:
                    raise RuntimeError(f"timed out after {timeout:.0f}s: {' '.join(args)}") from exc
            elapsed = time.perf_counter() - started
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        out: list[Completed] = []
        for args, proc, (o, e) in zip(commands, procs, outputs, strict=True):
            o.seek(0)
            e.seek(0)
            text = (o.read().decode(errors="replace"), e.read().decode(errors="replace"))
            out.append(Completed(list(args), proc.returncode, *text, elapsed))
        return out


def terminate(proc: subprocess.Popen[bytes], grace: float = 20.0) -> int | None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL; the exit code."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return None


def reap(procs: Iterable[BaseProcess], grace: float = 10.0) -> None:
    """Wait up to `grace` seconds for each multiprocessing child, then kill what is left."""
    for proc in procs:
        proc.join(timeout=grace)
        if proc.is_alive():
            proc.kill()
            proc.join()
