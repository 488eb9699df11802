"""Three nodes share one PostgreSQL database and one storage folder; the cluster client sends
1,000 instances straight to them while one is killed with SIGKILL: none fails, and every
instance is indexed exactly once with its file present and intact."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path

from hounsfield.client import Client, SendReport
from tests.livenode import Node, cli, node_env
from tests.synth import instance, write_part10
from tests.system.ingest_workers import check_archive

COUNT = 1000
STUDIES = 10


def _files(folder: Path) -> tuple[list[Path], list[str]]:
    folder.mkdir()
    paths, sops = [], []
    for s in range(STUDIES):
        study = f"1.2.826.0.1.3680043.10.998.{time.time_ns()}.{s}"
        for i in range(COUNT // STUDIES):
            ds = instance(
                StudyInstanceUID=study,
                SeriesInstanceUID=f"{study}.1",
                SOPInstanceUID=f"{study}.1.{i + 1}",
                InstanceNumber=i + 1,
                PatientID=f"KILL{s}",
            )
            path = folder / f"{s:02d}-{i:03d}.dcm"
            write_part10(ds, path)
            paths.append(path)
            sops.append(str(ds.SOPInstanceUID))
    return paths, sops


def test_a_node_killed_mid_send_loses_nothing(tmp_path: Path, postgresql_url: str) -> None:
    data_dir = tmp_path / "shared"
    envs = [
        node_env(
            data_dir,
            postgresql_url,
            HOUNSFIELD_NODE_NAME=f"node{n}",
            HOUNSFIELD_DIMSE_PROCESSES="1",
            HOUNSFIELD_SCHEDULER="false",
        )
        for n in range(3)
    ]
    upgrade = cli(envs[0], "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    paths, sops = _files(tmp_path / "in")
    nodes: list[Node] = []
    acknowledged: Counter[str] = Counter()
    lock = threading.Lock()

    def sent(_item: object, node: str | None) -> None:
        if node is not None:
            with lock:
                acknowledged[node] += 1

    try:
        for n, env in enumerate(envs):
            nodes.append(Node(env, tmp_path / f"node{n}.log"))
        client = Client(
            [f"127.0.0.1:{node.dimse_port}" for node in nodes],
            calling_ae="MODALITY",
            receive_timeout=30.0,
        )
        outcome: list[SendReport] = []
        sender = threading.Thread(
            target=lambda: outcome.append(client.send(paths, associations=3, on_sent=sent))
        )
        sender.start()
        deadline = time.monotonic() + 300
        while acknowledged.total() < COUNT // 3:
            assert time.monotonic() < deadline and sender.is_alive(), "the send did not start"
            time.sleep(0.01)
        # Studies go to nodes by their UIDs' hash: kill one that is taking some.
        with lock:
            busiest = acknowledged.most_common(1)[0][0]
        victim = next(n for n, node in enumerate(nodes) if busiest.endswith(f":{node.dimse_port}"))
        nodes[victim].signal(signal.SIGKILL)
        nodes[victim].wait()
        at_kill = acknowledged.total()
        sender.join(timeout=600)
        assert not sender.is_alive(), "the send did not finish"
    finally:
        alive = [node for node in nodes if node.proc.poll() is None]
        for node in alive:
            node.signal(signal.SIGTERM)
        for node in alive:
            node.wait()
    (report,) = outcome
    assert at_kill < COUNT, "the send finished before the kill"
    assert not report.failed, list(report.failed.items())[:5]
    assert len(report.sent) == COUNT and report.failovers >= 1
    killed = f"127.0.0.1:{nodes[victim].dimse_port}"
    # Its acknowledgements all came before the kill (one may have been read just after).
    assert 0 < report.per_node().get(killed, 0) <= at_kill + 1
    _indexed, problems = check_archive(postgresql_url, data_dir / "storage", sops)
    # The killed node may have written the file of the instance in flight without indexing
    # it (it is then stored again, at another node): at most that one unindexed file.
    beside = [p for p in problems if "files beside the indexed" in p]
    assert not [p for p in problems if p not in beside], problems[:5]
    assert len(beside) <= 1, beside
