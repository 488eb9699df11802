"""Run DCMTK's command-line tools as real peers (with TCP_NODELAY=1, as they need)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

ENV = {**os.environ, "TCP_NODELAY": "1"}


def run(
    tool: str, *args: str, timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run one DCMTK tool to completion and capture its output."""
    proc = subprocess.run([tool, *args], env=ENV, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{tool} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def store_status(port: int, path: Path, *args: str) -> int:
    """C-STORE one file with storescu and return the DIMSE status it received."""
    proc = run("storescu", "-d", "-aec", "HOUNSFIELD", *args, "127.0.0.1", str(port), str(path))
    match = re.search(r"DIMSE Status\s*:\s*0x([0-9a-fA-F]{4})", proc.stdout + proc.stderr)
    if match is None:
        raise AssertionError(f"no C-STORE response:\n{proc.stdout}\n{proc.stderr}")
    return int(match.group(1), 16)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_keys(level: str, keys: Sequence[str]) -> list[str]:
    """findscu arguments for a query level and `-k` keys."""
    args = ["-k", f"QueryRetrieveLevel={level}"]
    for key in keys:
        args += ["-k", key]
    return args


class StoreSCP:
    """A DCMTK storescp writing what it receives into a folder."""

    def __init__(self, folder: Path, ae_title: str = "STORESCP", accept: str = "+xa") -> None:
        """`accept`: storescp's transfer syntax option (+xa: all; +xi: implicit VR only)."""
        self.folder, self.ae_title, self.port = folder, ae_title, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["storescp", "-aet", ae_title, accept, "-pm", "+B", "-od", str(folder), str(self.port)],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("storescp did not start")

    def stop(self) -> None:
        """Terminate the listener."""
        self.proc.terminate()
        self.proc.wait(timeout=10)
