"""Floods and slow clients against a real node: 1,100 silent connections, requests dribbled a
byte a second before and after association, clients vanishing mid-PDU and more associations
than allowed, while a DCMTK client keeps storing (the short form of `make reliability`'s
flood part)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pynetdicom import AE
from pynetdicom.sop_class import Verification

from bench.reliability.flood_part import FloodPlan, floods
from bench.reliability.node import AE_TITLE, LOCALHOST, LiveNode

PLAN = FloodPlan(
    silent=1100,  # beyond FD_SETSIZE (1024) in the node's one DIMSE process
    dribble_rq=3,
    dribble_pdu=1,
    vanish=3,
    excess=6,
    slow_http=0,  # reported by `make reliability`, not a contract of the node's own code
    probe_seconds=8.0,
)


def test_floods_and_slow_clients_never_starve_a_normal_client(tmp_path: Path) -> None:
    out = floods(tmp_path, PLAN)
    assert out.silent.opened == PLAN.silent
    assert len(out.silent.closed_after) == PLAN.silent, "silent connections left open"
    assert len(out.dribble_rq.closed_after) == PLAN.dribble_rq
    assert len(out.dribble_pdu.closed_after) == PLAN.dribble_pdu
    assert out.vanished == PLAN.vanish
    assert out.probes and not out.probe_failures, out.probe_failures[:3]
    assert len(out.excess_rejected) == PLAN.excess, out.excess_other
    assert not out.problems, out.problems[:5]


def test_churning_clients_within_the_limit_are_never_refused(tmp_path: Path) -> None:
    """Two DIMSE processes share a limit of 8 (4 each); 6 clients open, use and release
    associations as fast as they can, and TCP checks connect and close without a word."""
    settings = {"HOUNSFIELD_DIMSE_PROCESSES": "2", "HOUNSFIELD_MAX_ASSOCIATIONS": "8"}
    node = LiveNode(tmp_path / "node", None, settings)
    node.cli("db", "upgrade")
    node.start()  # its readiness checks are such TCP checks
    counts = {"established": 0, "refused": 0}
    lock = threading.Lock()
    until = time.monotonic() + 8

    def churn() -> None:
        ae = AE("CHURN")
        ae.add_requested_context(Verification)
        while time.monotonic() < until:
            assoc = ae.associate(LOCALHOST, node.dimse_port, ae_title=AE_TITLE)
            ok = assoc.is_established and assoc.send_c_echo().Status == 0
            if assoc.is_established:
                assoc.release()
            with lock:
                counts["established" if ok else "refused"] += 1

    try:
        threads = [threading.Thread(target=churn) for _ in range(6)]
        for t in threads:
            t.start()
        while time.monotonic() < until:
            assert node.ready()
            time.sleep(0.2)
        for t in threads:
            t.join(timeout=60)
    finally:
        node.stop()
    assert counts["established"] > 0 and counts["refused"] == 0, counts
