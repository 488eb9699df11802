"""Run DCMTK's command-line tools as real peers (with TCP_NODELAY=1, as they need)."""

from __future__ import annotations

import os
import random
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


# Ports handed out for servers started later are drawn below the kernel's ephemeral range
# (32768-60999 here): a port the kernel picked is free only until it picks it again, for any
# outgoing connection, and a node started a moment later then found it taken.
PORTS = range(20000, 32768)
_PICK = random.SystemRandom()  # independent of any seed a test sets


def free_port() -> int:
    """A TCP port nobody listens on right now, outside the kernel's ephemeral range."""
    for _ in range(200):
        port = _PICK.choice(PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def find_keys(level: str, keys: Sequence[str]) -> list[str]:
    """findscu arguments for a query level and `-k` keys."""
    args = ["-k", f"QueryRetrieveLevel={level}"]
    for key in keys:
        args += ["-k", key]
    return args


class Listener:
    """A DCMTK tool listening on a port of its own until stopped."""

    def __init__(self, args: Sequence[str], port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [*args, str(port)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{args[0]} did not start")

    def stop(self) -> None:
        """Terminate the listener."""
        self.proc.terminate()
        self.proc.wait(timeout=10)


class StoreSCP(Listener):
    """A DCMTK storescp writing what it receives into a folder."""

    def __init__(self, folder: Path, ae_title: str = "STORESCP", accept: str = "+xa") -> None:
        """`accept`: storescp's transfer syntax option (+xa: all; +xi: implicit VR only)."""
        self.folder, self.ae_title = folder, ae_title
        folder.mkdir(parents=True, exist_ok=True)
        args = ["storescp", "-aet", ae_title, accept, "-pm", "+B", "-od", str(folder)]
        super().__init__(args, free_port())


class QueryRetrieveSCP(Listener):
    """A DCMTK dcmqrscp archive that answers C-FIND and C-MOVE but refuses C-GET (as many
    PACS do), holding the files given; `destinations` are the AE titles it may move to."""

    def __init__(
        self,
        folder: Path,
        files: Sequence[Path],
        destinations: dict[str, int],
        ae_title: str = "QRSCP",
    ) -> None:
        self.ae_title, port = ae_title, free_port()
        storage = folder / "db"
        storage.mkdir(parents=True, exist_ok=True)
        hosts = "\n".join(
            f"dest{n} = ({title}, 127.0.0.1, {dest})"
            for n, (title, dest) in enumerate(destinations.items())
        )
        config = folder / "dcmqrscp.cfg"
        config.write_text(
            f"NetworkTCPPort = {port}\nMaxPDUSize = 16384\nMaxAssociations = 8\n"
            f"HostTable BEGIN\n{hosts}\nHostTable END\n"
            "VendorTable BEGIN\nVendorTable END\n"
            f"AETable BEGIN\n{ae_title} {storage} RW (100, 1024mb) ANY\nAETable END\n"
        )
        if files:
            run("dcmqridx", str(storage), *map(str, files), check=True)
        super().__init__(["dcmqrscp", "--disable-get", "-c", str(config)], port)
