"""Kill -9 the node in the middle of forwarding 1,000 instances: after a restart every instance
reaches the destination, none lost, and only the few not yet recorded are sent again."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from pydicom.uid import generate_uid

from hounsfield.archive.context import Archive
from hounsfield.sites.devices import Device, add_device
from hounsfield.sites.forward import forward_studies
from hounsfield.sites.forward_state import Acks, list_forwards
from tests.livenode import Node, node_env
from tests.sites.peers import StoreCommitSCP
from tests.synth import instance, put

COUNT = 1000


def test_forward_survives_kill_9(archive: Archive, tmp_path: Path) -> None:
    study, series = generate_uid(), generate_uid()
    sops = set()
    for n in range(COUNT):
        ds = instance(StudyInstanceUID=study, SeriesInstanceUID=series, InstanceNumber=n + 1)
        put(archive, ds)
        sops.add(str(ds.SOPInstanceUID))
    # The destination holds its answer to the third of the instances until the node is killed:
    # the kill lands in the middle of the forward however fast it runs.
    held, killed = threading.Event(), threading.Event()

    def hold(received: int) -> None:
        if received == COUNT // 3:
            held.set()
            killed.wait(60)

    dest = StoreCommitSCP("HQ", on_store=hold)
    add_device(archive, Device("HQ", "127.0.0.1", dest.port))
    forward_studies(archive, "HQ", study=study)
    env = node_env(
        archive.settings.data_dir,
        archive.settings.sqlalchemy_url,
        HOUNSFIELD_QUEUE_LEASE_SECONDS="2",
        HOUNSFIELD_FORWARD_RETRY_SECONDS="0.5",
    )
    try:
        node = Node(env, tmp_path / "node.log")
        assert held.wait(120), "forwarding did not start"
        node.signal(signal.SIGKILL)
        node.wait()
        killed.set()
        at_kill = sum(dest.seen.stores.values())
        assert at_kill < COUNT, "the forward finished before the kill"

        node = Node(env, tmp_path / "node.log")
        deadline = time.monotonic() + 120
        while list_forwards(archive.engine, study=study)[0].state != "sent":
            assert time.monotonic() < deadline, "the forward did not finish after the restart"
            time.sleep(0.1)
        node.signal(signal.SIGTERM)
        assert node.wait() == 0
    finally:
        killed.set()
        dest.stop()
    assert set(dest.seen.stores) == sops  # none lost
    again = sum(times - 1 for times in dest.seen.stores.values())
    # at most those acknowledged but not yet recorded, and the one in flight, at the kill
    assert again <= Acks.LIMIT + 1, f"{again} instances sent twice"
    row = list_forwards(archive.engine, study=study)[0]
    assert (row.sent, row.instances, row.attempts) == (COUNT, COUNT, 2)
