"""HAProxy with `HF_PROXY_PROTOCOL=1` (deploy/haproxy.cfg) names each DICOM client to the
node in a PROXY protocol v2 header: the node's checks of the caller's host see the client,
not the balancer, and HAProxy's own checks still find the node UP."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.rejection import rejection
from tests.system.cluster import HOUNSFIELD, RUNNING, Cluster

CLIENT = "127.0.0.9"  # a workstation's address (HAProxy itself reaches the node from 127.0.0.1)


def test_the_node_sees_the_client_behind_haproxy(tmp_path: Path, postgresql_url: str) -> None:
    cluster = Cluster(
        tmp_path,
        postgresql_url,
        count=1,
        proxy_protocol=True,
        settings={"HOUNSFIELD_DIMSE_PROXY_PROTOCOL": '["127.0.0.0/8"]'},
    )
    with cluster:
        cluster.start()  # HAProxy's checks, each with its header, found the node UP
        allowed = f"HAPROXY-CHECK,*@{CLIENT}"  # the check from anywhere, others from CLIENT
        done = subprocess.run(
            [HOUNSFIELD, "partition", "set", "HOUNSFIELD", "--accept-from", allowed],
            env=cluster.nodes[0].env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        port = cluster.front_dimse
        deadline = time.monotonic() + 20
        while rejection(port, "HOUNSFIELD", "CALLER") is None:  # until the node reads it
            assert time.monotonic() < deadline, "the allow-list was never applied"
            time.sleep(0.2)
        assert rejection(port, "HOUNSFIELD", "CALLER") == (1, 1, 3)  # from 127.0.0.1: refused
        assert rejection(port, "HOUNSFIELD", "CALLER", source=CLIENT) is None  # accepted
        time.sleep(3)  # several more checks: the node stays UP
        assert cluster.proxy.states()["node1"] == RUNNING, cluster.proxy.states()
