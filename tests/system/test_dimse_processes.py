"""Several DIMSE processes behind one listener: shared load, merged metrics, losing one."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import Array
from pathlib import Path

from pynetdicom import AE
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)
from sqlalchemy import create_engine, func, select

from hounsfield.db.tables import instance
from hounsfield.dicomnet.handoff import LoadBoard, shares_of, short_lived
from hounsfield.metrics import NODE_REGISTRY, add_snapshot_source, snapshot
from tests.dcmtk import run
from tests.livenode import Node, cli, node_env
from tests.rejection import association_request
from tests.synth import instance as make_instance
from tests.synth import write_part10
from tests.system.processes import gone, http_get, spawned_children


def test_the_association_limit_is_split_over_the_processes() -> None:
    assert shares_of(32, 2) == [16, 16]
    assert shares_of(5, 2) == [3, 2]
    assert shares_of(1, 3) == [1, 1, 1]  # every process can take at least one


def test_new_connections_go_where_there_is_most_room() -> None:
    board = LoadBoard(Array("i", 3), [2, 2, 1])
    alive = [True, True, True]
    assert board.choose(alive) == 1  # all idle: an extra process before the listener
    board.add(1, 1)
    assert board.choose(alive) == 0  # most room
    board.add(0, 1)
    assert board.choose(alive) == 2  # one place each: the idle one
    assert board.choose([True, True, False]) == 1  # 2 is gone
    board.add(2, 1)
    board.add(1, 1)
    assert board.choose(alive) == 0
    board.add(0, 1)
    assert board.choose(alive) in {0, 1, 2}  # all full: one of them rejects
    assert board.choose([False, False, False]) == 0


def test_a_short_association_stays_with_the_listener_on_a_tie() -> None:
    """An echo or a query is not handed over when the listener has as much room as any
    other process and no more associations; otherwise it goes where there is most room."""
    board = LoadBoard(Array("i", 3), [2, 2, 1])
    alive = [True, True, True]
    assert board.choose(alive, short=True) == 0
    board.add(0, 1)
    assert board.choose(alive, short=True) == 1  # most room
    board.add(1, 1)
    assert board.choose(alive, short=True) == 2  # one place each: the least loaded
    board.add(2, 1)
    assert board.choose(alive, short=True) == 0  # a tie of room and of associations
    assert board.choose(alive) == 1  # anything else: an extra process on a tie


def test_what_an_association_proposes_tells_a_short_one() -> None:
    """Verification and the C-FIND models only: short; anything else (storage, C-GET,
    a request not arrived whole, not a request at all): not."""

    def proposing(*syntaxes: str, cut: int = 0) -> bool:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            theirs.sendall(association_request("HOUNSFIELD", "ASKER", syntaxes)[: -cut or None])
            return short_lived(ours)

    assert proposing(Verification, StudyRootQueryRetrieveInformationModelFind)
    assert not proposing(Verification, CTImageStorage)
    assert not proposing(StudyRootQueryRetrieveInformationModelGet)
    assert not proposing(Verification, cut=10)


def test_metrics_of_other_processes_are_added_to_the_listeners() -> None:
    def child() -> list[list[tuple[str, str, list[tuple[str, str]], float]]]:
        return [
            [
                ("hounsfield_instances_sent", "hounsfield_instances_sent_total", [], 0.0),
                (
                    "hounsfield_failures",
                    "hounsfield_failures_total",
                    [("operation", "c_store"), ("reason", "test-only-reason")],
                    3.0,
                ),
            ]
        ]

    before = {(r[1], tuple(r[2])): r[3] for r in snapshot()}
    add_snapshot_source(child)
    merged = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in NODE_REGISTRY.collect()
        for s in family.samples
    }
    key = ("hounsfield_failures_total", (("operation", "c_store"), ("reason", "test-only-reason")))
    assert merged[key] == before.get(key, 0.0) + 3.0


def _store(port: int, files: list[Path]) -> int:
    return run(
        "storescu", "-aec", "HOUNSFIELD", "127.0.0.1", str(port), *map(str, files)
    ).returncode


def _count(url: str) -> int:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(instance)) or 0)
    finally:
        engine.dispose()


def _opened_per_process(http: int) -> dict[str, float]:
    text = http_get(http, "/metrics")
    found = re.findall(
        r'hounsfield_associations_total\{event="opened",process="(\d+)"\} (\S+)', text
    )
    return {process: float(value) for process, value in found}


def test_two_processes_share_parallel_stores_and_survive_losing_one(
    tmp_path: Path, database_url: str
) -> None:
    sqlite = database_url.startswith("sqlite")
    url = database_url if not sqlite else f"sqlite:///{tmp_path / 'data' / 'hounsfield.db'}"
    env = node_env(
        tmp_path / "data", url, HOUNSFIELD_DIMSE_PROCESSES="2", HOUNSFIELD_HTTP_PROCESSES="1"
    )
    assert cli(env, "db", "upgrade").returncode == 0
    batches = [
        [write_part10(make_instance(), tmp_path / f"b{b}-{i}.dcm") for i in range(15)]
        for b in range(4)
    ]
    node = Node(env, tmp_path / "serve.log")
    try:
        (child,) = spawned_children(node.proc.pid)
        # An association held open (by the extra process: it proposes storage, so it is not
        # kept by the listener as an echo or a query alone would be) makes the next
        # connection go to the listener, whatever the timing of the parallel stores; it is
        # still open when that process is killed.
        ae = AE("HOLDER")
        ae.add_requested_context(Verification)
        ae.add_requested_context(CTImageStorage)
        held = ae.associate("127.0.0.1", node.dimse_port, ae_title="HOUNSFIELD")
        assert held.is_established
        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(lambda b: _store(node.dimse_port, b), batches))
        assert codes == [0, 0, 0, 0]
        assert _count(url) == 60
        deadline = time.monotonic() + 5
        while len(opened := _opened_per_process(node.http_port)) < 2:
            assert time.monotonic() < deadline, f"one process served everything: {opened}"
            time.sleep(0.1)
        assert opened["0"] >= 1 and opened["1"] >= 1

        os.kill(child, signal.SIGKILL)  # stores go on; another process replaces it
        more = [write_part10(make_instance(), tmp_path / f"after-{i}.dcm") for i in range(3)]
        for one in more:
            assert _store(node.dimse_port, [one]) == 0
        assert _count(url) == 63
        deadline = time.monotonic() + 30
        while not (replaced := [c for c in spawned_children(node.proc.pid) if c != child]):
            assert time.monotonic() < deadline, "the dead DIMSE process was not replaced"
            time.sleep(0.1)
        assert gone(child)
        held.abort()
        # its last report said one association was open: not counted; its counters are kept
        text = http_get(node.http_port, "/metrics")
        active = re.search(r"^hounsfield_active_associations (\S+)", text, re.M)
        assert active and float(active.group(1)) == 0
        before = _opened_per_process(node.http_port)["1"]
        assert before >= opened["1"]
        # once ready, the replacement takes connections (an idle node hands a lone storage
        # association to process 1); on a busy machine a new process takes a while to be ready
        deadline = time.monotonic() + 60
        while _opened_per_process(node.http_port)["1"] < before + 1:
            assert time.monotonic() < deadline, "the replacement took no connection"
            again = ae.associate("127.0.0.1", node.dimse_port, ae_title="HOUNSFIELD")
            assert again.is_established
            again.release()
            time.sleep(0.3)
        assert len(replaced) == 1
    finally:
        node.signal(signal.SIGTERM)
        assert node.wait() == 0
    assert all(gone(c) for c in replaced)  # the node waited for its extra process to end


def test_processes_finish_and_exit_with_the_listener(tmp_path: Path, database_url: str) -> None:
    sqlite = database_url.startswith("sqlite")
    url = database_url if not sqlite else f"sqlite:///{tmp_path / 'data' / 'hounsfield.db'}"
    env = node_env(
        tmp_path / "data", url, HOUNSFIELD_DIMSE_PROCESSES="3", HOUNSFIELD_HTTP_PROCESSES="1"
    )
    assert cli(env, "db", "upgrade").returncode == 0
    node = Node(env, tmp_path / "serve.log")
    children = spawned_children(node.proc.pid)
    assert len(children) == 2
    node.signal(signal.SIGKILL)  # the listener dies without a word
    node.wait()
    deadline = time.monotonic() + 15
    while not all(gone(c) for c in children):
        assert time.monotonic() < deadline, "DIMSE processes outlived their listener"
        time.sleep(0.1)
