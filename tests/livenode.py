"""Run `hounsfield` as a real process, the way an operator does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.dcmtk import free_port, run

HOUNSFIELD = str(Path(sys.executable).parent / "hounsfield")


def node_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """Environment for a node with its own folder, database and ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUNSFIELD_")}
    env.update(
        HOUNSFIELD_DATA_DIR=str(data_dir),
        HOUNSFIELD_DATABASE_URL=database_url,
        HOUNSFIELD_DIMSE_PORT=str(free_port()),
        HOUNSFIELD_HTTP_PORT=str(free_port()),
        HOUNSFIELD_HOST="127.0.0.1",
        HOUNSFIELD_STORAGE_RESERVE_BYTES="0",
    )
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one `hounsfield` command to completion."""
    return subprocess.run(
        [HOUNSFIELD, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


class Node:
    """A `hounsfield serve` process."""

    def __init__(self, env: dict[str, str], log: Path, ae_title: str = "HOUNSFIELD") -> None:
        """Start it and wait until it answers a C-ECHO to `ae_title` (its default partition:
        other called AE titles are refused)."""
        self.env, self.log = env, log
        self.dimse_port = int(env["HOUNSFIELD_DIMSE_PORT"])
        self.http_port = int(env["HOUNSFIELD_HTTP_PORT"])
        self._out = open(log, "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [HOUNSFIELD, "serve"], env=env, stdout=self._out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited early:\n{log.read_text()}")
            if run("echoscu", "-aec", ae_title, "127.0.0.1", str(self.dimse_port)).returncode == 0:
                return
            time.sleep(0.2)
        self.proc.kill()  # never leave a half-started node behind
        self.wait()
        raise RuntimeError(f"serve did not start:\n{log.read_text()}")

    def signal(self, sig: signal.Signals) -> None:
        """Send a signal to the server process."""
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        """Wait for the process to end; its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._out.close()
