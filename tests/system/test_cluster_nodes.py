"""Two real nodes on one PostgreSQL database and one data folder: the registry, draining,
configuration changes seen by the other node, and the scheduler singleton moving when its
node is killed."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.dcmtk import run
from tests.livenode import Node, cli, node_env

FAST = {
    "HOUNSFIELD_HEARTBEAT_SECONDS": "0.5",
    "HOUNSFIELD_NODE_DOWN_SECONDS": "3",
    "HOUNSFIELD_QUEUE_LEASE_SECONDS": "30",
    "HOUNSFIELD_SCHEDULER_POLL_SECONDS": "0.5",
    "HOUNSFIELD_DIMSE_PROCESSES": "1",
}


def _until(check: Callable[[], bool], seconds: float, what: str) -> float:
    """Wait until `check()` holds; the seconds it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s: {what}"
        time.sleep(0.1)
    return time.monotonic() - started


def _health(node: Node) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/health", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _echo(node: Node, called: str = "HOUNSFIELD") -> bool:
    return run("echoscu", "-aec", called, "127.0.0.1", str(node.dimse_port)).returncode == 0


def _states(env: dict[str, str]) -> dict[str, str]:
    listed = cli(env, "cluster", "status", "--json")
    assert listed.returncode == 0, listed.stderr
    return {row["name"]: row["state"] for row in json.loads(listed.stdout)}


def _leader(log: Path) -> bool:
    return "now runs scheduler" in log.read_text(errors="replace")


def test_two_nodes_share_registry_drain_config_and_singleton(
    tmp_path: Path, postgresql_url: str
) -> None:
    data = tmp_path / "data"
    envs = [
        node_env(data, postgresql_url, HOUNSFIELD_NODE_NAME=name, **FAST) for name in ("n1", "n2")
    ]
    assert cli(envs[0], "db", "upgrade").returncode == 0
    logs = [tmp_path / "n1.log", tmp_path / "n2.log"]
    first = Node(envs[0], logs[0])
    second = Node(envs[1], logs[1])
    nodes = {"n1": first, "n2": second}
    try:
        _until(lambda: _states(envs[0]) == {"n1": "up", "n2": "up"}, 10, "both nodes up")

        # Draining: new associations refused, /health 503; resuming undoes both.
        assert cli(envs[0], "cluster", "drain", "n2").returncode == 0
        _until(lambda: not _echo(second) and _health(second) == 503, 5, "n2 drains")
        assert _states(envs[0])["n2"] == "draining"
        assert _echo(first) and _health(first) == 200
        assert cli(envs[0], "cluster", "resume", "n2").returncode == 0
        _until(lambda: _echo(second) and _health(second) == 200, 5, "n2 serves again")

        # A partition added through one node answers on the other within seconds.
        assert cli(envs[0], "partition", "add", "CLINIC9").returncode == 0
        _until(lambda: _echo(second, "CLINIC9"), 5, "the new partition on n2")

        # Exactly one node runs the scheduler; kill it and the other takes over.
        _until(lambda: _leader(logs[0]) or _leader(logs[1]), 10, "a scheduler leader")
        assert not (_leader(logs[0]) and _leader(logs[1]))
        holder, other = ("n1", "n2") if _leader(logs[0]) else ("n2", "n1")
        nodes[holder].signal(signal.SIGKILL)
        nodes[holder].wait()
        other_log = logs[0] if other == "n1" else logs[1]
        _until(lambda: _leader(other_log), 10, "the scheduler moves to the live node")
        _until(lambda: _states(envs[0])[holder] == "down", 10, "the killed node is down")
        assert _states(envs[0])[other] == "up"
    finally:
        for node in nodes.values():
            if node.proc.poll() is None:
                node.signal(signal.SIGTERM)
                node.wait()
    stopped = _states(envs[0])
    assert stopped[other] == "stopped" and stopped[holder] == "down"
