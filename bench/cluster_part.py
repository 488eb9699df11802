"""The cluster part: nodes on one PostgreSQL database behind HAProxy (deploy/haproxy.cfg);
ingest throughput with one, two and three nodes, and what a kill -9 of a node costs."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from bench.memory import cpu_seconds
from bench.procs import client_env, dcmtk
from bench.settings import DEFAULT_PG, BenchSettings
from tests.synth import instance as make_instance
from tests.synth import write_part10
from tests.system.cluster import RUNNING, STOPPED, Cluster, SendReport, echo, send_until_acked

DATABASE = "hounsfield_bench_cluster"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return max(1, int(raw)) if raw else default


@dataclass
class Throughput:
    """Ingest through HAProxy with `nodes` nodes: seconds of each run, and the CPU seconds
    each part of the system spent in it (nodes, PostgreSQL, HAProxy, the storescu clients)."""

    nodes: int
    instances: int
    seconds: list[float] = field(default_factory=list)
    cpu: list[dict[str, float]] = field(default_factory=list)

    def cpu_ms_per_instance(self, part: str) -> float | None:
        """Median CPU milliseconds `part` spent per instance."""
        values = [run[part] for run in self.cpu if part in run]
        return 1000 * statistics.median(values) / self.instances if values else None

    @property
    def per_second(self) -> float | None:
        """Instances per second of the median run."""
        return self.instances / statistics.median(self.seconds) if self.seconds else None


@dataclass
class KillSample:
    """One kill -9 of a node under load."""

    down: float  # kill -> HAProxy marks it DOWN
    back: float  # kill -> first new association through HAProxy
    held: int  # work items the node held when it died
    reclaimed: int  # of those, taken over by another node


@dataclass
class ClusterResults:
    """What the cluster part measured."""

    instances: int
    associations: int
    throughput: list[Throughput] = field(default_factory=list)
    kills: list[KillSample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _database(server: str) -> str:
    import psycopg

    base = server.rstrip("/")
    if base.count("/") > 2:
        base = base.rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    return f"{base}/{DATABASE}"


def _files(folder: Path, count: int, tag: str) -> list[Path]:
    """`count` small CT instances in studies of 50, with UIDs of their own."""
    folder.mkdir(parents=True, exist_ok=True)
    root = f"1.2.826.0.1.3680043.10.998.{os.getpid()}.{tag}"
    out: list[Path] = []
    for n in range(count):
        study = f"{root}.{n // 50}"
        ds = make_instance(
            StudyInstanceUID=study,
            SeriesInstanceUID=f"{study}.1",
            SOPInstanceUID=f"{study}.1.{n % 50 + 1}",
            InstanceNumber=n % 50 + 1,
        )
        path = folder / f"{n}.dcm"
        write_part10(ds, path)
        out.append(path)
    return out


def _storescu(port: int, files: list[Path], associations: int) -> float:
    """Wall time of `associations` storescu processes sending `files` through HAProxy."""
    lists = [files[i::associations] for i in range(associations)]
    env = client_env()
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [dcmtk("storescu"), "-aec", "HOUNSFIELD", "127.0.0.1", str(port), *map(str, one)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for one in lists
    ]
    failed = [p.communicate(timeout=600)[1] for p in procs if p.wait(timeout=600) != 0]
    if failed:
        raise RuntimeError(f"storescu failed: {failed[0].decode(errors='replace')[-500:]}")
    return time.perf_counter() - started


CPU_PARTS = ("nodes", "postgresql", "haproxy", "clients")


def _postgres_pids() -> list[int]:
    """Every PostgreSQL server process on the machine (the cluster's database server)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _cpu(cluster: Cluster) -> dict[str, float]:
    """CPU seconds so far of the nodes (with their DIMSE and queue processes), PostgreSQL,
    HAProxy and this process's finished children (the storescu clients)."""
    nodes = sum(cpu_seconds(n.proc.pid) for n in cluster.nodes if n.proc is not None)
    proxy = cluster.proxy.proc
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "nodes": nodes,
        "postgresql": sum(cpu_seconds(pid) for pid in _postgres_pids()),
        "haproxy": cpu_seconds(proxy.pid) if proxy is not None else 0.0,
        "clients": children.ru_utime + children.ru_stime,
    }


def _throughput(work: Path, pg: str, nodes: int, out: ClusterResults, repeats: int) -> None:
    runs = Throughput(nodes, out.instances)
    out.throughput.append(runs)
    with Cluster(work / f"nodes{nodes}", _database(pg), count=nodes) as cluster:
        cluster.start()
        warm = _files(work / f"warm{nodes}", 20, f"9{nodes}")
        _storescu(cluster.front_dimse, warm, min(out.associations, 2))
        for r in range(repeats):
            files = _files(work / f"n{nodes}r{r}", out.instances, f"{nodes}.{r}")
            os.sync()
            before = _cpu(cluster)
            runs.seconds.append(_storescu(cluster.front_dimse, files, out.associations))
            after = _cpu(cluster)
            runs.cpu.append({part: after[part] - before[part] for part in CPU_PARTS})
            print(f"    {nodes} node(s), run {r + 1}: {runs.seconds[-1]:.2f} s", flush=True)


def _held(cluster: Cluster, node: str) -> list[int]:
    import psycopg

    with psycopg.connect(cluster.database_url) as conn:
        rows = conn.execute(
            "SELECT pk FROM work_item WHERE node = %s AND status = 'in_progress'", (node,)
        ).fetchall()
    return [r[0] for r in rows]


def _reclaimed(cluster: Cluster, node: str, held: list[int], lease: float) -> int:
    import psycopg

    deadline = time.monotonic() + lease + 15
    while _held(cluster, node) and time.monotonic() < deadline:
        time.sleep(0.2)
    with psycopg.connect(cluster.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM work_item WHERE pk = ANY(%s) AND node <> %s",
            (held, node),
        ).fetchone()
    return int(row[0]) if row else 0


def _one_kill(cluster: Cluster, round_: int) -> KillSample:
    """Load through HAProxy, kill -9 the busiest node, time DOWN and the next association."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    datasets = []
    for n in range(800):
        study = f"1.2.826.0.1.3680043.10.998.{os.getpid()}.8{round_}.{n // 25}"
        ds = make_instance(StudyInstanceUID=study, SOPInstanceUID=f"{study}.{n % 25 + 1}")
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        datasets.append(ds)
    reports = [SendReport() for _ in range(4)]
    deadline = time.monotonic() + 300
    threads = [
        threading.Thread(
            target=send_until_acked,
            args=(datasets[i::4], cluster.front_dimse, reports[i], deadline),
            daemon=True,
        )
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    while sum(len(r.acked) for r in reports) < 300:
        time.sleep(0.05)
    sessions = cluster.proxy.sessions()
    victim = max(sessions, key=lambda name: (sessions[name], len(_held(cluster, name))))
    node = cluster.node(victim)
    started = time.monotonic()
    node.kill()
    held = _held(cluster, victim)
    down = back = 0.0
    while not (down and back) and time.monotonic() - started < 30:
        if not down and cluster.proxy.states().get(victim) == STOPPED:
            down = time.monotonic() - started
        if not back and echo("127.0.0.1", cluster.front_dimse, timeout=3):
            back = time.monotonic() - started
    lease = float(node.env["HOUNSFIELD_QUEUE_LEASE_SECONDS"])
    reclaimed = _reclaimed(cluster, victim, held, lease)
    for thread in threads:
        thread.join(timeout=300)
    node.start()
    cluster.proxy.wait_state(victim, RUNNING, 30)
    if not (down and back):
        raise RuntimeError(f"after 30 s: DOWN {down or 'never'}, back {back or 'never'}")
    return KillSample(down, back, len(held), reclaimed)


def _kills(work: Path, pg: str, out: ClusterResults, repeats: int) -> None:
    with Cluster(work / "kill", _database(pg), count=3) as cluster:
        cluster.start()
        for r in range(repeats):
            out.kills.append(_one_kill(cluster, r))
            k = out.kills[-1]
            print(
                f"    kill {r + 1}: DOWN after {k.down:.2f} s, new association after "
                f"{k.back:.2f} s, {k.held} work items held, {k.reclaimed} reclaimed",
                flush=True,
            )


def measure(settings: BenchSettings) -> ClusterResults:
    """Throughput with 1, 2 and 3 nodes, then the kills; a failure is recorded, not raised."""
    print("\n== cluster behind HAProxy", flush=True)
    out = ClusterResults(
        _env_int("BENCH_CLUSTER_INSTANCES", 600), _env_int("BENCH_CLUSTER_ASSOCIATIONS", 6)
    )
    repeats = _env_int("BENCH_CLUSTER_REPEATS", 3)
    pg = settings.postgres or DEFAULT_PG
    work = settings.work_dir / "cluster"
    subprocess.run(["rm", "-rf", str(work)], check=False)
    for nodes in (1, 2, 3):
        try:
            _throughput(work, pg, nodes, out, repeats)
        except Exception as exc:
            out.errors.append(f"cluster, {nodes} node(s): {exc}\n{traceback.format_exc(limit=4)}")
    try:
        _kills(work, pg, out, _env_int("BENCH_CLUSTER_KILLS", 3))
    except Exception as exc:
        out.errors.append(f"cluster, kill: {exc}\n{traceback.format_exc(limit=4)}")
    return out
