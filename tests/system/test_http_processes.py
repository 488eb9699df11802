"""Several HTTP processes on one port: both answer, /metrics is the node's whichever answers,
a process that dies is replaced, and they end with the node."""

from __future__ import annotations

import http.client
import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.dcmtk import run
from tests.livenode import Node, cli, node_env
from tests.synth import instance as make_instance
from tests.synth import write_part10
from tests.system.processes import gone, serving_pid, spawned_children

STOW_TYPE = 'multipart/related; type="application/dicom"; boundary={b}'


def _node(tmp_path: Path, database_url: str) -> Node:
    sqlite = database_url.startswith("sqlite")
    url = database_url if not sqlite else f"sqlite:///{tmp_path / 'data' / 'hounsfield.db'}"
    env = node_env(
        tmp_path / "data", url, HOUNSFIELD_HTTP_PROCESSES="2", HOUNSFIELD_DIMSE_PROCESSES="1"
    )
    assert cli(env, "db", "upgrade").returncode == 0
    return Node(env, tmp_path / "serve.log")


@contextmanager
def _connection_to(port: int, pid: int, deadline: float) -> Iterator[http.client.HTTPConnection]:
    """A keep-alive connection that process `pid` serves (new ones until one lands there)."""
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/health")
        conn.getresponse().read()
        if serving_pid(conn, port) == pid:
            break
        conn.close()
        assert time.monotonic() < deadline, f"no connection reached process {pid}"
    try:
        yield conn
    finally:
        conn.close()


def _http_child(node: Node, deadline: float) -> int:
    """The node's extra HTTP process, once it serves."""
    while True:
        children = spawned_children(node.proc.pid)
        if len(children) == 1:
            try:
                with _connection_to(node.http_port, children[0], time.monotonic() + 5):
                    return children[0]
            except AssertionError:
                pass
        assert time.monotonic() < deadline, f"no HTTP process serving: {children}"
        time.sleep(0.2)


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, str]:
    conn.request("GET", path)
    rsp = conn.getresponse()
    return rsp.status, rsp.read().decode()


def _stow(conn: http.client.HTTPConnection) -> int:
    """STOW-RS of one new instance; the answer's status."""
    file = BytesIO()
    write_part10(make_instance(), file)
    body = file.getvalue()
    boundary = uuid.uuid4().hex
    part = b"--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n--%s--\r\n" % (
        boundary.encode(),
        body,
        boundary.encode(),
    )
    headers = {"Content-Type": STOW_TYPE.format(b=boundary), "Accept": "application/dicom+json"}
    conn.request("POST", "/dicomweb/studies", body=part, headers=headers)
    rsp = conn.getresponse()
    rsp.read()
    return rsp.status


def _received(text: str, source: str) -> float:
    """Objects `source` stored, as /metrics counts them."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "hounsfield_instances_received_total"
        and sample.labels == {"source": source, "outcome": "stored"}
    )


def test_both_processes_answer_and_metrics_are_the_nodes(tmp_path: Path, database_url: str) -> None:
    node = _node(tmp_path, database_url)
    try:
        deadline = time.monotonic() + 60
        child = _http_child(node, deadline)
        stored = [write_part10(make_instance(), tmp_path / f"{i}.dcm") for i in range(3)]
        assert run("storescu", "-aec", "HOUNSFIELD", "127.0.0.1", str(node.dimse_port),
                   *map(str, stored)).returncode == 0  # fmt: skip
        with (
            _connection_to(node.http_port, node.proc.pid, deadline) as main,
            _connection_to(node.http_port, child, deadline) as extra,
        ):
            for _ in range(2):  # what the extra process stores, through STOW-RS
                assert _stow(extra) == 200
            # each process shows the other's counts with its own: the child at once (it
            # asks the node), the node once the child has reported (every second)
            while True:
                status_main, text_main = _get(main, "/metrics")
                status_extra, text_extra = _get(extra, "/metrics")
                assert status_main == status_extra == 200
                seen = [
                    (_received(t, "dimse"), _received(t, "stow")) for t in (text_main, text_extra)
                ]
                if seen == [(3.0, 2.0), (3.0, 2.0)]:
                    break
                assert time.monotonic() < deadline, f"per process (node, extra): {seen}"
                time.sleep(0.2)
            status, found = _get(main, "/dicomweb/instances?includefield=all")
            assert status == 200 and found.count('"00080018"') == 5
    finally:
        node.signal(signal.SIGTERM)
        assert node.wait() == 0
    assert gone(child)  # the node waited for its extra process to end


def test_a_dead_http_process_is_replaced_and_all_end_with_the_node(
    tmp_path: Path, database_url: str
) -> None:
    node = _node(tmp_path, database_url)
    try:
        child = _http_child(node, time.monotonic() + 60)
        os.kill(child, signal.SIGKILL)
        for _ in range(20):  # the port keeps answering meanwhile
            conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=10)
            assert _get(conn, "/health")[0] == 200
            conn.close()
        replacement = _http_child(node, time.monotonic() + 60)
        assert replacement != child and gone(child)
        node.signal(signal.SIGKILL)  # the node dies without a word
        node.wait()
        deadline = time.monotonic() + 15
        while not gone(replacement):
            assert time.monotonic() < deadline, "an HTTP process outlived its node"
            time.sleep(0.1)
    finally:
        if node.proc.poll() is None:
            node.signal(signal.SIGKILL)
            node.wait()
