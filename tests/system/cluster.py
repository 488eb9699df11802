"""A real cluster for system tests and the benchmark: `hounsfield serve` nodes sharing one
PostgreSQL database and one storage folder, each on its own loopback address, behind HAProxy
running the shipped deploy/haproxy.cfg."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE

from deploy.dicom_check import check_hex
from tests.dcmtk import free_port

REPO = Path(__file__).resolve().parents[2]
HAPROXY_CFG = REPO / "deploy" / "haproxy.cfg"
HAPROXY = os.environ.get("HAPROXY", "haproxy")
HOUNSFIELD = str(Path(sys.executable).parent / "hounsfield")
AE_TITLE = "HOUNSFIELD"
DICOM_BACKEND, HTTP_BACKEND = "dicom_nodes", "http_nodes"
# srv_op_state of `show servers state`
STOPPED, STARTING, RUNNING, STOPPING = 0, 1, 2, 3
NODE_SETTINGS = {
    "HOUNSFIELD_DIMSE_PROCESSES": "1",
    "HOUNSFIELD_STORAGE_RESERVE_BYTES": "0",
    "HOUNSFIELD_QUEUE_LEASE_SECONDS": "5",
    "HOUNSFIELD_STUDY_SETTLE_SECONDS": "0.5",
}


def node_address(index: int) -> str:
    """The loopback address of node `index` (0-based): 127.0.0.2, 127.0.0.3, ..."""
    return f"127.0.0.{index + 2}"


def _free_on_all(addresses: list[str]) -> int:
    """A TCP port nobody listens on at 127.0.0.1 nor at any of `addresses`."""
    while True:
        port = free_port()  # outside the kernel's ephemeral range
        try:
            for address in addresses:
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((address, port))
        except OSError:
            continue
        return port


def echo(host: str, port: int, ae_title: str = AE_TITLE, timeout: float = 5) -> bool:
    """True when a C-ECHO to `ae_title` at host:port succeeds (DCMTK's echoscu)."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    args = ["echoscu", "-to", str(timeout), "-ta", str(timeout), "-aec", ae_title]
    try:
        done = subprocess.run(
            [*args, host, str(port)], env=env, capture_output=True, timeout=timeout + 5
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


@dataclass
class ClusterNode:
    """One `hounsfield serve` process (in a process group of its own, so that a kill takes
    its queue and DIMSE processes with it, as a lost machine would)."""

    name: str
    address: str
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def dimse_port(self) -> int:
        """The node's DICOM port (the same on every node)."""
        return int(self.env["HOUNSFIELD_DIMSE_PORT"])

    @property
    def http_port(self) -> int:
        """The node's HTTP port (the same on every node)."""
        return int(self.env["HOUNSFIELD_HTTP_PORT"])

    def ready(self) -> bool:
        """True once its DICOM port takes connections and its /health answers 200 (a C-ECHO
        would not do: a node may refuse unknown callers)."""
        try:
            with socket.create_connection((self.address, self.dimse_port), timeout=2):
                pass
            url = f"http://{self.address}:{self.http_port}/health"
            with urllib.request.urlopen(url, timeout=5) as rsp:
                return int(rsp.status) == 200
        except OSError:
            return False

    def start(self, timeout: float = 60) -> None:
        """Start it and wait until it is ready."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [HOUNSFIELD, "serve"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            if self.ready():
                return
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"{self.name} did not start:\n{self.tail()}")

    def alive(self) -> bool:
        """True while its process runs."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9 the node's whole process group."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, grace: float = 20) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; the exit code (None: killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def tail(self, lines: int = 40) -> str:
        """The end of its log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class HAProxy:
    """HAProxy running deploy/haproxy.cfg in the foreground, with an admin stats socket."""

    env: dict[str, str]
    socket_path: Path
    log: Path
    config: Path = HAPROXY_CFG
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Check the configuration, start HAProxy and wait for its stats socket."""
        check = subprocess.run(
            [HAPROXY, "-c", "-q", "-f", str(self.config)], env=self.env, capture_output=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c failed:\n{check.stdout!r}\n{check.stderr!r}")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(self.config)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited:\n{self.log.read_text()}")
            try:
                self.command("show info")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("haproxy's stats socket did not appear")

    def command(self, line: str) -> str:
        """One command on the runtime API; its answer."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.socket_path))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def states(self, backend: str = DICOM_BACKEND) -> dict[str, int]:
        """srv_op_state of each server of `backend` (2: up, 0: down)."""
        out: dict[str, int] = {}
        for line in self.command(f"show servers state {backend}").splitlines():
            cells = line.split()
            if len(cells) > 5 and not line.startswith("#") and cells[1] == backend:
                out[cells[3]] = int(cells[5])
        return out

    def sessions(self, backend: str = DICOM_BACKEND) -> dict[str, int]:
        """Current sessions per server of `backend`."""
        return self._stat(backend, "scur")

    def totals(self, backend: str = DICOM_BACKEND) -> dict[str, int]:
        """Sessions each server of `backend` has taken since HAProxy started."""
        return self._stat(backend, "stot")

    def _stat(self, backend: str, column: str) -> dict[str, int]:
        rows = self.command("show stat").splitlines()
        header = rows[0].lstrip("# ").split(",")
        name, server, at = header.index("pxname"), header.index("svname"), header.index(column)
        out = {}
        for row in rows[1:]:
            cells = row.split(",")
            if len(cells) > at and cells[name] == backend and cells[server] != "BACKEND":
                out[cells[server]] = int(cells[at] or 0)
        return out

    def wait_state(
        self, server: str, state: int, timeout: float, backend: str = DICOM_BACKEND
    ) -> float:
        """Seconds until `server` of `backend` is in `state`; AssertionError after `timeout`."""
        started = time.monotonic()
        while self.states(backend).get(server) != state:
            if time.monotonic() - started > timeout:
                raise AssertionError(
                    f"{backend}/{server} not in state {state} after {timeout:g} s: "
                    f"{self.states(backend)}"
                )
            time.sleep(0.02)
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop HAProxy."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@dataclass
class Cluster:
    """`count` nodes on one database and one data folder, behind HAProxy on 127.0.0.1."""

    work: Path
    database_url: str
    count: int = 3
    settings: dict[str, str] = field(default_factory=dict)
    check_ae: str = AE_TITLE  # the called AE title of HAProxy's DICOM check
    proxy_protocol: bool = False  # HAProxy names each DICOM client in a PROXY protocol header
    per_node: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> env
    nodes: list[ClusterNode] = field(default_factory=list)
    haproxy: HAProxy | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.count <= 3:
            raise ValueError("deploy/haproxy.cfg names three servers")
        self.work.mkdir(parents=True, exist_ok=True)
        addresses = [node_address(i) for i in range(self.count)]
        self.dimse_port = _free_on_all(addresses)
        self.http_port = _free_on_all(addresses)
        self.front_dimse = _free_on_all([])
        self.front_http = _free_on_all([])
        self.data_dir = self.work / "shared"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("HOUNSFIELD_", "HF_"))}
        for i, address in enumerate(addresses):
            env = {
                **base,
                **NODE_SETTINGS,
                "HOUNSFIELD_DATA_DIR": str(self.data_dir),
                "HOUNSFIELD_DATABASE_URL": self.database_url,
                "HOUNSFIELD_HOST": address,
                "HOUNSFIELD_DIMSE_PORT": str(self.dimse_port),
                "HOUNSFIELD_HTTP_PORT": str(self.http_port),
                "HOUNSFIELD_NODE_NAME": f"node{i + 1}",
                **self.settings,
                **self.per_node.get(f"node{i + 1}", {}),
            }
            log = self.work / f"node{i + 1}.log"
            self.nodes.append(ClusterNode(f"node{i + 1}", address, env, log))

    @property
    def storage_dir(self) -> Path:
        """The shared storage folder (the default tier-1 filesystem of every node)."""
        return self.data_dir / "storage"

    def haproxy_env(self) -> dict[str, str]:
        """The environment deploy/haproxy.cfg reads."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HOUNSFIELD_", "HF_"))}
        names = [node_address(i) if i < self.count else "" for i in range(3)]
        env.update(
            HF_DICOM_BIND=f"127.0.0.1:{self.front_dimse}",
            HF_HTTP_BIND=f"127.0.0.1:{self.front_http}",
            HF_NODE1=names[0],
            HF_NODE2=names[1],
            HF_NODE3=names[2],
            HF_DIMSE_PORT=str(self.dimse_port),
            HF_HTTP_PORT=str(self.http_port),
            HF_DICOM_CHECK=check_hex(self.check_ae),
            HF_STATS_SOCKET=str(self.work / "haproxy.sock"),
            HF_PROXY_PROTOCOL="1" if self.proxy_protocol else "0",
        )
        return env

    def upgrade(self) -> None:
        """Create the schema once, from the first node's settings."""
        done = subprocess.run(
            [HOUNSFIELD, "db", "upgrade"],
            env=self.nodes[0].env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"db upgrade failed:\n{done.stdout}\n{done.stderr}")

    def start_haproxy(self) -> HAProxy:
        """Start HAProxy on the shipped configuration."""
        self.haproxy = HAProxy(
            self.haproxy_env(), self.work / "haproxy.sock", self.work / "haproxy.log"
        )
        self.haproxy.start()
        return self.haproxy

    def start(self, wait_up: float = 30) -> Cluster:
        """Schema, nodes, HAProxy; returns once HAProxy sees every node UP."""
        self.upgrade()
        for node in self.nodes:
            node.start()
        proxy = self.start_haproxy()
        for node in self.nodes:
            proxy.wait_state(node.name, RUNNING, wait_up)
            proxy.wait_state(node.name, RUNNING, wait_up, HTTP_BACKEND)
        return self

    @property
    def proxy(self) -> HAProxy:
        """The running HAProxy."""
        if self.haproxy is None:
            raise RuntimeError("HAProxy is not started")
        return self.haproxy

    def node(self, name: str) -> ClusterNode:
        """A node by name (node1, node2, ...)."""
        return next(n for n in self.nodes if n.name == name)

    def stop(self) -> None:
        """Stop the nodes, then HAProxy."""
        for node in self.nodes:
            if node.alive() and node.proc is not None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()
        if self.haproxy is not None:
            self.haproxy.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class SendReport:
    """What one retrying sender did: acknowledged SOP Instance UIDs and its trouble."""

    acked: set[str] = field(default_factory=set)
    associations: int = 0
    broken: int = 0  # associations that ended in an abort or a failed C-STORE
    refused: int = 0  # associations that could not be opened
    errors: list[str] = field(default_factory=list)


def send_until_acked(
    datasets: list[Dataset],
    port: int,
    report: SendReport,
    deadline: float,
    host: str = "127.0.0.1",
    ae_title: str = AE_TITLE,
) -> None:
    """C-STORE `datasets` with pynetdicom, opening a new association after any abort or
    failure and sending again every instance not acknowledged, until `deadline`."""
    ae = AE("CLUSTER-SCU")
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 30
    ae.connection_timeout = 5
    for sop_class in {str(ds.SOPClassUID) for ds in datasets}:
        ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    pending = list(datasets)
    while pending and time.monotonic() < deadline:
        assoc = ae.associate(host, port, ae_title=ae_title)
        if not assoc.is_established:
            report.refused += 1
            time.sleep(0.1)
            continue
        report.associations += 1
        done = 0
        try:
            for ds in pending:
                status = assoc.send_c_store(ds)
                if status.get("Status") != 0:
                    report.errors.append(f"{ds.SOPInstanceUID}: status {status.get('Status')}")
                    break
                report.acked.add(str(ds.SOPInstanceUID))
                done += 1
        except Exception as exc:  # an aborted association: send the rest again
            report.errors.append(f"{type(exc).__name__}: {exc}")
        pending = pending[done:]
        if pending:
            report.broken += 1
            assoc.abort()
            time.sleep(0.05)
        else:
            assoc.release()
