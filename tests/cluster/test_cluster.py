"""The cluster's shared state on each database: node registry, reaper, usage counters,
configuration version, singletons, draining."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from pynetdicom import AE
from pynetdicom.sop_class import Verification
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from hounsfield.archive.context import Archive
from hounsfield.archive.delete import remove
from hounsfield.catalog import partitions
from hounsfield.cli import app as cli_app
from hounsfield.cluster import nodes
from hounsfield.cluster.config import ConfigWatch
from hounsfield.cluster.heartbeat import Condition, Heartbeat
from hounsfield.cluster.reaper import reap
from hounsfield.cluster.singleton import Singleton
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem_usage, node, service, work_item
from hounsfield.dimse.server import DimseServer
from hounsfield.scheduled.scheduler import ensure_services
from hounsfield.storage.usage import recount, used_bytes
from hounsfield.web.app import create_app
from hounsfield.workqueue.items import now
from hounsfield.workqueue.queue import Queue, enqueue
from tests.conftest import make_archive, make_settings
from tests.rejection import rejection
from tests.storage_helpers import store_variant

INFO = nodes.NodeInfo("node-a", "10.0.0.1", 11112, 8080, "1.0", 42, ("dimse", "workers"))


def _age(archive: Archive, name: str, seconds: float) -> None:
    """Pretend `name` last beat `seconds` ago."""
    with db.write(archive.engine) as conn:
        conn.execute(
            update(node)
            .where(node.c.name == name)
            .values(beat_at=now() - timedelta(seconds=seconds))
        )


def test_registry_states_and_drain(archive: Archive) -> None:
    nodes.register(archive.engine, INFO)
    nodes.register(archive.engine, nodes.NodeInfo("node-b", "10.0.0.2", 104, 80, "1.0", 7, ()))
    assert nodes.beat(archive.engine, "node-a", healthy=True, problem="", associations=3) is False
    states = {r.name: r.state for r in nodes.list_nodes(archive.engine, 2.0, 10.0)}
    assert states == {"node-a": "up", "node-b": "up"}
    _age(archive, "node-b", 5)
    assert {r.name: r.state for r in nodes.list_nodes(archive.engine, 2.0, 10.0)}["node-b"] == (
        "suspect"
    )
    _age(archive, "node-b", 11)
    assert nodes.down_nodes(archive.engine, 10.0) == ["node-b"]
    nodes.set_draining(archive.engine, "node-a", True)
    assert nodes.beat(archive.engine, "node-a", healthy=True, problem="", associations=0)
    rows = {r.name: r for r in nodes.list_nodes(archive.engine, 2.0, 10.0)}
    assert rows["node-a"].state == "draining"
    nodes.stopped(archive.engine, "node-a")
    assert {r.name: r.state for r in nodes.list_nodes(archive.engine, 2.0, 10.0)}["node-a"] == (
        "stopped"
    )
    # A restart keeps the draining flag: the operator resumes it.
    nodes.register(archive.engine, INFO)
    assert nodes.draining(archive.engine, "node-a")
    nodes.set_draining(archive.engine, "node-a", False)
    assert not nodes.draining(archive.engine, "node-a")


def test_reaper_releases_what_a_dead_node_held(archive: Archive) -> None:
    ensure_services(archive)
    nodes.register(archive.engine, INFO)
    dead = Queue(archive.engine, "node-a", lease_seconds=3600)
    with db.write(archive.engine) as conn:
        enqueue(conn, "noop", {}, max_retries=3)
        conn.execute(
            update(service)
            .where(service.c.name == "purge-alerts")
            .values(locked_by="node-a", locked_until=now() + timedelta(hours=1))
        )
    held = dead.claim()
    assert held is not None
    listed = {r.name: r for r in nodes.list_nodes(archive.engine, 2.0, 10.0)}
    assert listed["node-a"].holds == 1
    _age(archive, "node-a", 60)
    reaped = reap(archive.engine, nodes.down_nodes(archive.engine, 10.0))
    assert (reaped.services, reaped.items) == (1, 1)
    taken = Queue(archive.engine, "node-b").claim()
    assert taken is not None and taken.pk == held.pk and taken.failure_count == 1
    assert not dead.complete(held)  # the dead node's late answer is refused
    with db.read(archive.engine) as conn:
        lock = conn.execute(
            select(service.c.locked_until).where(service.c.name == "purge-alerts")
        ).scalar_one()
    assert lock is not None and lock.replace(tzinfo=None) <= now().replace(tzinfo=None)


def _counted(archive: Archive) -> dict[int, int]:
    with db.read(archive.engine) as conn:
        return {
            int(pk): int(total)
            for pk, total in conn.execute(
                select(file.c.filesystem_pk, func.sum(file.c.size)).group_by(file.c.filesystem_pk)
            ).all()
        }


def test_usage_counters_follow_the_index(archive: Archive) -> None:
    results = [store_variant(archive, "CT_small.dcm", n) for n in range(3)]
    with db.read(archive.engine) as conn:
        assert used_bytes(conn) == _counted(archive)
    remove(archive, results[0].study)
    with db.read(archive.engine) as conn:
        assert used_bytes(conn) == _counted(archive)
        fs = next(iter(used_bytes(conn)))
    # A change behind the triggers' back (here: the counter itself) is found and corrected.
    with db.write(archive.engine) as conn:
        conn.execute(filesystem_usage.insert().values(filesystem_pk=fs, shard=99, bytes=12345))
    assert recount(archive.engine) == {fs: -12345}
    assert recount(archive.engine) == {}
    with db.read(archive.engine) as conn:
        assert used_bytes(conn) == _counted(archive)
    archive.filesystems.invalidate()
    assert archive.filesystems.get(fs).used_bytes == _counted(archive)[fs]


def test_usage_counters_are_shared_by_nodes(tmp_path: Path, database_url: str) -> None:
    """Two archives on one database (two nodes) see each other's writes at once."""
    first = make_archive(make_settings(tmp_path / "a", database_url))
    second = make_archive(make_settings(tmp_path / "b", database_url))
    try:
        stored = store_variant(first, "CT_small.dcm", 1)
        fs = first.filesystems.for_write(0).pk
        second.filesystems.invalidate()
        assert second.filesystems.get(fs).used_bytes == _counted(first)[fs]
        assert stored.outcome.value == "stored"
    finally:
        first.close()
        second.close()


def test_config_watch_sees_changes_from_anywhere(tmp_path: Path, database_url: str) -> None:
    first = make_archive(make_settings(tmp_path / "a", database_url))
    second = make_archive(make_settings(tmp_path / "b", database_url))
    try:
        calls: list[str] = []
        watch = ConfigWatch(second.engine, [lambda: calls.append("changed")])
        assert watch.check() is False  # the first look only learns the version
        assert watch.check() is False
        with db.write(first.engine) as conn:
            partitions.add(conn, "CLINIC1")
        assert watch.check() is True and calls == ["changed"]
        # Work-queue traffic is not configuration.
        with db.write(first.engine) as conn:
            enqueue(conn, "noop", {})
        assert watch.check() is False
    finally:
        first.close()
        second.close()


def test_singleton_is_held_once_and_moves(tmp_path: Path, database_url: str) -> None:
    first = make_archive(make_settings(tmp_path / "a", database_url))
    second = make_archive(make_settings(tmp_path / "a", database_url))  # same SQLite file
    try:
        a, b = Singleton(first.engine, "scheduler"), Singleton(second.engine, "scheduler")
        assert a.held() and a.held()
        assert not b.held()
        if first.engine.dialect.name == "postgresql":
            # The holder's connection dies (node killed, link lost): the lock goes with it.
            with db.write(second.engine) as conn:
                conn.execute(
                    text(
                        # waits (up to 10 s) until the backend has ended, its lock with it
                        "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks "
                        "WHERE locktype = 'advisory' AND pid <> pg_backend_pid() AND database = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database())"
                    )
                )
            assert b.held()
            assert not a.held()
            b.release()
            assert a.held()
        else:
            a.release()
            assert b.held() and not a.held()
        a.release()
        b.release()
    finally:
        first.close()
        second.close()


def test_draining_node_refuses_associations_and_reports_503(archive: Archive) -> None:
    condition = Condition()
    server = DimseServer(archive, draining=lambda: condition.draining)
    server.start()
    try:
        scu = AE(ae_title="SCU")
        scu.add_requested_context(Verification)
        assoc = scu.associate("127.0.0.1", server.port, ae_title=archive.settings.ae_title)
        assert assoc.is_established
        condition.draining = True
        refused = rejection(server.port, archive.settings.ae_title, "SCU")
        assert refused is not None and refused[0] == 0x02  # transient: try elsewhere
        # The association open before the drain goes on.
        assert assoc.send_c_echo().Status == 0x0000
        assoc.release()
        client = TestClient(create_app(archive, condition=lambda: condition))
        response = client.get("/health")
        assert response.status_code == 503 and response.json()["draining"] is True
        condition.draining = False
        assert client.get("/health").status_code == 200
    finally:
        server.stop(grace_seconds=2)


def test_heartbeat_and_cluster_commands(archive: Archive, tmp_path: Path) -> None:
    beat = Heartbeat(archive, associations=lambda: 2)
    beat.start(INFO)
    try:
        assert beat.condition.may_claim
        runner = CliRunner()
        env = {
            "HOUNSFIELD_DATA_DIR": str(archive.settings.data_dir),
            "HOUNSFIELD_DATABASE_URL": archive.settings.database_url or "",
        }
        listed = runner.invoke(cli_app, ["cluster", "status", "--json"], env=env)
        assert listed.exit_code == 0, listed.output
        (row,) = json.loads(listed.output)
        assert (row["name"], row["state"], row["associations"]) == ("node-a", "up", 2)
        assert runner.invoke(cli_app, ["cluster", "drain", "node-a"], env=env).exit_code == 0
        assert beat.beat().draining and not beat.condition.may_claim
        client = TestClient(create_app(archive))
        assert client.get("/admin/cluster").json()[0]["state"] == "draining"
        assert client.post("/admin/cluster/node-a/resume").status_code == 200
        assert not beat.beat().draining
        assert client.post("/admin/cluster/nobody/drain").status_code == 404
        refused = runner.invoke(cli_app, ["cluster", "forget", "node-a"], env=env)
        assert refused.exit_code != 0  # it is up
    finally:
        beat.stop()
    with db.read(archive.engine) as conn:
        assert conn.scalar(select(node.c.stopped_at).where(node.c.name == "node-a")) is not None


def test_unreachable_storage_stops_claims(archive: Archive) -> None:
    """A node whose storage is gone (an unmounted share) takes no work and says why."""
    beat = Heartbeat(archive, associations=lambda: 0)
    beat.start(INFO)
    storage = archive.settings.storage_dir
    away = storage.with_name("unmounted")
    try:
        storage.rename(away)
        condition = beat.beat()
        assert not condition.may_claim and "not writable" in condition.problem
        (row,) = nodes.list_nodes(archive.engine, 2.0, 10.0)
        assert not row.healthy and "not writable" in row.problem
        away.rename(storage)
        assert beat.beat().may_claim
    finally:
        if away.exists():
            away.rename(storage)
        beat.stop()


def test_work_items_show_their_node(archive: Archive) -> None:
    with db.write(archive.engine) as conn:
        enqueue(conn, "noop", {})
    assert Queue(archive.engine, "node-a").claim() is not None
    with db.read(archive.engine) as conn:
        assert conn.scalar(select(work_item.c.node)) == "node-a"
