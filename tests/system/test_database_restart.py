"""PostgreSQL restarted in the middle of ingest: stores in flight get 0xA701 (never a false
success), /health says 503 meanwhile, the node recovers by itself, nothing acknowledged is
lost, and no file is left behind that the index does not know."""

from __future__ import annotations

import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage
from sqlalchemy import select

from hounsfield.db.engine import make_engine
from hounsfield.db.tables import file, instance
from hounsfield.settings import Settings
from tests.livenode import Node, cli, node_env
from tests.synth import instance as synthetic
from tests.system.private_pg import PrivatePostgres

OUTAGE_SECONDS = 3.0


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server this test may stop and start."""
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.remove()


class Sender(threading.Thread):
    """Sends new instances one after another, associating again whenever it must."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.answers: list[tuple[str, int | None]] = []  # (SOP Instance UID, status or None)
        self.stop = threading.Event()
        self.study = generate_uid()

    def run(self) -> None:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        n = 0
        while not self.stop.is_set():
            assoc = ae.associate("127.0.0.1", self.port, ae_title="HOUNSFIELD")
            while assoc.is_established and not self.stop.is_set():
                n += 1
                ds = synthetic(StudyInstanceUID=self.study, InstanceNumber=n)
                ds.file_meta = FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                reply = assoc.send_c_store(ds)
                status = int(reply.Status) if "Status" in reply else None
                self.answers.append((str(ds.SOPInstanceUID), status))
            if assoc.is_established:
                assoc.release()
            time.sleep(0.1)

    def count(self, status: int) -> int:
        """How many answers had `status`."""
        return sum(1 for _, s in self.answers if s == status)


def _health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _until(check: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.05)


def test_postgresql_restart_during_ingest(tmp_path: Path, private_pg: PrivatePostgres) -> None:
    env = node_env(
        tmp_path / "data",
        private_pg.url,
        HOUNSFIELD_DIMSE_PROCESSES="1",
        HOUNSFIELD_HEARTBEAT_SECONDS="0.5",
    )
    assert cli(env, "db", "upgrade").returncode == 0
    node = Node(env, tmp_path / "node.log")
    sender = Sender(node.dimse_port)
    try:
        sender.start()
        _until(lambda: sender.count(0x0000) >= 100, 60, "100 stores before the outage")
        private_pg.stop()
        down_at = time.monotonic()
        _until(lambda: sender.count(0xA701) >= 1, 30, "a store refused during the outage")
        assert _health(node.http_port) == 503
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        before = sender.count(0x0000)
        private_pg.start()
        _until(lambda: sender.count(0x0000) >= before + 100, 60, "stores succeed again")
        _until(lambda: _health(node.http_port) == 200, 10, "/health says 200 again")
    finally:
        sender.stop.set()
        sender.join(30)
        node.signal(signal.SIGTERM)
        node.wait()

    statuses = {status for _, status in sender.answers}
    assert statuses <= {0x0000, 0xA701}, f"unexpected answers {statuses}"
    acked = {sop for sop, status in sender.answers if status == 0x0000}
    engine = make_engine(Settings(database_url=private_pg.url).sqlalchemy_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(instance.c.sop_iuid, file.c.path, file.c.size, file.c.filesystem_pk).join(
                file, file.c.instance_pk == instance.c.pk
            )
        ).all()
    engine.dispose()
    indexed = [r.sop_iuid for r in rows]
    assert len(indexed) == len(set(indexed)), "an instance indexed twice"
    assert acked <= set(indexed), f"{len(acked - set(indexed))} acknowledged instances lost"
    storage = tmp_path / "data" / "storage"
    for row in rows:
        assert (storage / row.path).stat().st_size == row.size
    on_disk = {
        str(p.relative_to(storage))
        for p in storage.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }
    assert on_disk == {row.path for row in rows}, "files the index does not know"
