"""A `hounsfield serve` process in a process group of its own, for the reliability runs."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HOUNSFIELD = str(Path(sys.executable).parent / "hounsfield")
LOCALHOST = "127.0.0.1"
AE_TITLE = "HOUNSFIELD"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveNode:
    """One node: its data folder, database, ports and, while it runs, its process."""

    folder: Path
    database_url: str | None = None  # None: the embedded SQLite under the data folder
    settings: dict[str, str] = field(default_factory=dict)  # HOUNSFIELD_* overrides
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dimse_port, self.http_port = free_port(), free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("HOUNSFIELD_")}
        self.env = {
            **base,
            "TCP_NODELAY": "1",
            "HOUNSFIELD_DATA_DIR": str(self.folder / "data"),
            "HOUNSFIELD_HOST": LOCALHOST,
            "HOUNSFIELD_DIMSE_PORT": str(self.dimse_port),
            "HOUNSFIELD_HTTP_PORT": str(self.http_port),
            "HOUNSFIELD_STORAGE_RESERVE_BYTES": "0",
            "HOUNSFIELD_HTTP_AUTH": "never",
            **self.settings,
        }
        if self.database_url:
            self.env["HOUNSFIELD_DATABASE_URL"] = self.database_url
        self.log = self.folder / "serve.log"

    @property
    def data_dir(self) -> Path:
        """The node's data folder."""
        return self.folder / "data"

    @property
    def storage(self) -> Path:
        """The node's tier-1 storage folder."""
        return self.folder / "data" / "storage"

    @property
    def pid(self) -> int:
        """The serve process's id."""
        if self.proc is None:
            raise RuntimeError("the node is not running")
        return self.proc.pid

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run one `hounsfield` command with the node's settings; raise when it fails."""
        done = subprocess.run(
            [HOUNSFIELD, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"hounsfield {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done

    def ready(self) -> bool:
        """True once the DICOM port takes connections and /health answers 200."""
        try:
            with socket.create_connection((LOCALHOST, self.dimse_port), timeout=2):
                pass
            url = f"http://{LOCALHOST}:{self.http_port}/health"
            with urllib.request.urlopen(url, timeout=5) as rsp:
                return int(rsp.status) == 200
        except OSError:
            return False

    def start(self, timeout: float = 90) -> float:
        """Start `hounsfield serve` and wait until it is ready; seconds it took."""
        started = time.monotonic()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [HOUNSFIELD, "serve"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited early:\n{self.tail()}")
            if self.ready():
                return time.monotonic() - started
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"serve did not start in {timeout:g} s:\n{self.tail()}")

    def alive(self) -> bool:
        """True while the serve process runs."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9 the node's whole process group (serve, its DIMSE and worker processes)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        deadline = time.monotonic() + 10  # the group's other members exit with it
        while time.monotonic() < deadline and _group_alive(self.proc.pid):
            time.sleep(0.05)

    def stop(self, grace: float = 30) -> int | None:
        """SIGTERM, then kill -9 after `grace` seconds; the exit code (None: killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def tail(self, lines: int = 40) -> str:
        """The end of the node's log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
