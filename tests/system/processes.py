"""A node's processes seen from outside: its spawned children, which one serves an HTTP
connection, whether one is gone."""

from __future__ import annotations

import http.client
import re
import subprocess
import urllib.request
from pathlib import Path


def http_get(port: int, path: str) -> str:
    """The body of GET `path` on a new connection."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as rsp:
        return str(rsp.read().decode())


def spawned_children(pid: int) -> list[int]:
    """The extra processes of a node (spawned children, not multiprocessing's tracker)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    found = []
    for child in out.split():
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            found.append(int(child))
    return found


def gone(pid: int) -> bool:
    """Whether process `pid` has exited (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:")[1].splitlines()[0]
    except (OSError, IndexError):
        return True
    return "zombie" in state


def serving_pid(conn: http.client.HTTPConnection, port: int) -> int | None:
    """The process whose socket is the server's end of `conn` (connected), from `ss`."""
    assert conn.sock is not None
    local = conn.sock.getsockname()[1]
    query = f"( sport = :{port} and dport = :{local} )"
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", query], capture_output=True, text=True
    ).stdout
    found = re.search(r"pid=(\d+)", out)
    return int(found.group(1)) if found else None
