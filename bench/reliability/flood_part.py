"""Floods and slow clients: silent connections by the thousand, clients dribbling a byte a
second, clients that vanish, more associations than allowed and slow HTTP clients, while a
normal client keeps storing."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import resource
import selectors
import socket
import statistics
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification

from bench.reliability.node import AE_TITLE, LOCALHOST, LiveNode

TIMEOUTS = {  # the node's, short so that a run sees every purge
    "HOUNSFIELD_ASSOCIATION_TIMEOUT": "4",
    "HOUNSFIELD_DIMSE_TIMEOUT": "4",
    "HOUNSFIELD_IDLE_TIMEOUT": "8",
    "HOUNSFIELD_MAX_ASSOCIATIONS": "8",
    "HOUNSFIELD_DIMSE_PROCESSES": "1",  # one process holds every connection
}
NEVER_HANGS = 30.0  # an answer or a close later than this counts as a hang
TCP_ENV = {**os.environ, "TCP_NODELAY": "1"}


@dataclass(frozen=True)
class FloodPlan:
    """How many of each troublemaker, and how long the normal client keeps probing."""

    silent: int
    dribble_rq: int
    dribble_pdu: int
    vanish: int
    excess: int
    slow_http: int
    probe_seconds: float


QUICK = FloodPlan(1100, 5, 2, 5, 8, 5, 20.0)
LONG = FloodPlan(3000, 20, 3, 30, 40, 20, 60.0)


@dataclass
class Closed:
    """Connections of one kind: how many, how many the server closed, after how long."""

    opened: int = 0
    closed_after: list[float] = field(default_factory=list)

    @property
    def left_open(self) -> int:
        """Connections the server never closed within NEVER_HANGS (after its timeouts)."""
        return self.opened - len(self.closed_after)


@dataclass
class FloodOutcome:
    """What the troublemakers and the normal client saw."""

    plan: FloodPlan
    silent: Closed = field(default_factory=Closed)
    dribble_rq: Closed = field(default_factory=Closed)
    dribble_pdu: Closed = field(default_factory=Closed)
    vanished: int = 0
    probes: list[float] = field(default_factory=list)  # seconds per echo + store, answered
    probe_failures: list[str] = field(default_factory=list)
    excess_rejected: list[float] = field(default_factory=list)  # seconds to the A-ASSOCIATE-RJ
    excess_other: list[str] = field(default_factory=list)  # accepted, aborted or hung
    slow_http: Closed = field(default_factory=Closed)
    http_failures: list[str] = field(default_factory=list)
    server_fds: list[int] = field(default_factory=list)  # before, at the peak, after
    server_threads: list[int] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Every way the server failed the others, named (slow HTTP is reported, not judged)."""
        out = [f"normal client failed: {f}" for f in self.probe_failures]
        out += [f"excess association: {f}" for f in self.excess_other]
        for name, kind in (
            ("silent", self.silent),
            ("A-ASSOCIATE-RQ dribbler", self.dribble_rq),
            ("P-DATA dribbler", self.dribble_pdu),
        ):
            if kind.left_open:
                out.append(f"{kind.left_open} {name} connection(s) never closed by the server")
        if len(self.excess_rejected) != self.plan.excess:
            out.append(f"{len(self.excess_rejected)} of {self.plan.excess} excess rejected")
        out += [f"HTTP: {f}" for f in self.http_failures]
        return out


def _crowd(port: int, count: int, report: Any) -> None:
    """A process holding `count` silent connections; reports when they are open, then the
    seconds from each one's opening to its close by the server, until all are closed or
    NEVER_HANGS pass."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    socks = []
    selector = selectors.DefaultSelector()
    for _ in range(count):
        try:
            sock = socket.create_connection((LOCALHOST, port), timeout=NEVER_HANGS)
        except OSError as exc:
            report.send(("error", str(exc)))
            break
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, time.monotonic())
        socks.append(sock)
    report.send(("open", len(socks)))
    closed: list[float] = []  # seconds from each connection's opening to its close
    deadline = time.monotonic() + NEVER_HANGS + float(TIMEOUTS["HOUNSFIELD_ASSOCIATION_TIMEOUT"])
    while selector.get_map() and time.monotonic() < deadline:
        for key, _mask in selector.select(timeout=1.0):
            held: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                data = held.recv(4096)
            except OSError:
                data = b""
            if not data:
                selector.unregister(held)
                closed.append(time.monotonic() - key.data)
    report.send(("closed", closed))
    for sock in socks:
        sock.close()


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the other end closes `sock` (EOF or reset) within `seconds`; whatever it sends
    first (an A-ABORT, an HTTP error) is read and dropped."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def _dribble(port: int, data: bytes) -> float | None:
    """`data` sent to `port` on a new connection one byte a second; the seconds from the
    connecting to the server's close (a failed send counts as one), or None when it never
    closed: every byte was sent, or NEVER_HANGS passed."""
    started = time.monotonic()
    with socket.create_connection((LOCALHOST, port), timeout=NEVER_HANGS) as sock:
        for i in range(len(data)):
            try:
                sock.sendall(data[i : i + 1])
            except OSError:
                break
            if closed_within(sock, 1.0):
                break
            if time.monotonic() - started > NEVER_HANGS:
                return None
        else:
            return None
    return time.monotonic() - started


def _dribble_rq(port: int, into: Closed, lock: threading.Lock) -> None:
    """An A-ASSOCIATE-RQ of 300 bytes sent one byte a second."""
    took = _dribble(port, b"\x01\x00" + struct.pack(">I", 300) + bytes(300))
    if took is not None:
        with lock:
            into.closed_after.append(took)


def _associate(port: int) -> Association:
    ae = AE("FLOOD")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = NEVER_HANGS
    ae.connection_timeout = 5
    ae.add_requested_context(Verification)
    return ae.associate(LOCALHOST, port, ae_title=AE_TITLE)


def _dribble_pdu(port: int, into: Closed, lock: threading.Lock) -> None:
    """An association, then a P-DATA-TF of 1000 bytes sent one byte a second; the server has
    closed it when a send fails or the association is no longer up."""
    assoc = _associate(port)
    for _ in range(3):  # the crowd of silent connections may hold the accept loop a moment
        if assoc.is_established:
            break
        time.sleep(1.0)
        assoc = _associate(port)
    else:
        return
    started = time.monotonic()
    sock = assoc.dul.socket.socket if assoc.dul.socket else None
    data = b"\x04\x00" + struct.pack(">I", 1000) + bytes(1000)
    closed = sock is None
    try:
        for i in range(len(data)):
            if not assoc.is_established or sock is None:
                closed = True
                break
            sock.sendall(data[i : i + 1])
            time.sleep(1.0)
            if time.monotonic() - started > NEVER_HANGS:
                break
    except OSError:
        closed = True
    if closed:
        with lock:
            into.closed_after.append(time.monotonic() - started)
    assoc.abort()


def _vanish(port: int) -> bool:
    """An association that sends half a PDU and then resets the connection."""
    assoc = _associate(port)
    if not assoc.is_established or assoc.dul.socket is None:
        return False
    sock = assoc.dul.socket.socket
    if sock is None:
        return False
    with contextlib.suppress(OSError):
        sock.sendall(b"\x04\x00" + struct.pack(">I", 5000) + bytes(100))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    assoc.kill()
    return True


def _probe_file(folder: Path) -> Path:
    from tests.synth import instance, write_part10

    ds = instance()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = folder / "probe.dcm"
    write_part10(ds, path)
    return path


def _probe(port: int, part10: Path) -> tuple[float, str]:
    """One C-ECHO and one C-STORE by DCMTK; seconds taken and '' or what failed."""
    started = time.monotonic()
    limits = ["-to", "10", "-ta", "10", "-td", "10"]
    for args in (
        ["echoscu", *limits, "-aec", AE_TITLE, LOCALHOST, str(port)],
        ["storescu", *limits, "-aec", AE_TITLE, LOCALHOST, str(port), str(part10)],
    ):
        try:
            done = subprocess.run(
                args, env=TCP_ENV, capture_output=True, text=True, timeout=NEVER_HANGS
            )
        except subprocess.TimeoutExpired:
            return time.monotonic() - started, f"{args[0]} hung"
        if done.returncode != 0:
            return time.monotonic() - started, f"{args[0]}: {done.stderr.strip()[-200:]}"
    return time.monotonic() - started, ""


def _count(pid: int, what: str) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/{what}"))
    except OSError:
        return -1


def _excess(node: LiveNode, plan: FloodPlan, out: FloodOutcome) -> None:
    """Fill every association slot, then ask for `plan.excess` more at once."""
    limit = int(TIMEOUTS["HOUNSFIELD_MAX_ASSOCIATIONS"])
    held = [_associate(node.dimse_port) for _ in range(limit)]
    try:
        if not all(a.is_established for a in held):
            out.excess_other.append("the slots could not all be filled")
            return
        results: list[tuple[float, str]] = []
        lock = threading.Lock()

        def one() -> None:  # DCMTK's echoscu, a peer that is not the code under test
            started = time.monotonic()
            args = ["echoscu", "-to", "10", "-ta", "10", "-td", "10", "-aec", AE_TITLE]
            try:
                done = subprocess.run(
                    [*args, LOCALHOST, str(node.dimse_port)],
                    env=TCP_ENV,
                    capture_output=True,
                    text=True,
                    timeout=NEVER_HANGS,
                )
                said = done.stderr.strip().replace("\n", " ")
                if done.returncode == 0:
                    state = "established"
                elif "Association Rejected" in said:
                    state = "rejected"
                else:
                    state = f"failed otherwise ({said[-160:]})"
            except subprocess.TimeoutExpired:
                state = "hung"
            with lock:
                results.append((time.monotonic() - started, state))

        threads = [threading.Thread(target=one) for _ in range(plan.excess)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=NEVER_HANGS + 10)
        for took, state in results:
            if state == "rejected" and took < NEVER_HANGS:
                out.excess_rejected.append(took)
            else:
                out.excess_other.append(f"{state} after {took:.1f} s")
        if len(results) < plan.excess:
            out.excess_other.append(f"{plan.excess - len(results)} never returned")
    finally:
        for a in held:
            if a.is_established:
                a.release()


def _slow_http(port: int, count: int, out: FloodOutcome) -> None:
    """`count` HTTP clients sending a request header one byte a second, and a normal client
    asking /health meanwhile."""
    out.slow_http.opened = count
    lock = threading.Lock()
    header = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"

    def slow() -> None:
        took = _dribble(port, header)
        if took is not None:
            with lock:
                out.slow_http.closed_after.append(took)

    threads = [threading.Thread(target=slow) for _ in range(count)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + NEVER_HANGS
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{LOCALHOST}:{port}/health", timeout=10) as r:
                if r.status != 200:
                    out.http_failures.append(f"/health answered {r.status}")
        except OSError as exc:
            out.http_failures.append(f"/health: {exc}")
        time.sleep(1.0)
    for t in threads:
        t.join(timeout=NEVER_HANGS + 5)


def floods(work: Path, plan: FloodPlan) -> FloodOutcome:
    """Run every kind of troublemaker against one fresh node (see the module docstring)."""
    out = FloodOutcome(plan)
    node = LiveNode(work / "node", None, dict(TIMEOUTS))
    node.cli("db", "upgrade")
    node.start()
    part10 = _probe_file(work)
    try:
        out.server_fds.append(_count(node.pid, "fd"))
        out.server_threads.append(_count(node.pid, "task"))
        ctx = mp.get_context("spawn")
        mine, theirs = ctx.Pipe()
        crowd = ctx.Process(target=_crowd, args=(node.dimse_port, plan.silent, theirs))
        crowd.start()
        if mine.poll(NEVER_HANGS * 4):
            kind, value = mine.recv()
            out.silent.opened = value if kind == "open" else 0
            if kind == "error":
                out.probe_failures.append(f"silent connections could not be opened: {value}")
        lock = threading.Lock()
        out.dribble_rq.opened, out.dribble_pdu.opened = plan.dribble_rq, plan.dribble_pdu
        threads = [
            threading.Thread(target=_dribble_rq, args=(node.dimse_port, out.dribble_rq, lock))
            for _ in range(plan.dribble_rq)
        ] + [
            threading.Thread(target=_dribble_pdu, args=(node.dimse_port, out.dribble_pdu, lock))
            for _ in range(plan.dribble_pdu)
        ]
        for t in threads:
            t.start()
        peak_fds, peak_threads = 0, 0
        started = time.monotonic()
        vanishing = plan.vanish
        while time.monotonic() - started < plan.probe_seconds or any(t.is_alive() for t in threads):
            if vanishing:
                out.vanished += _vanish(node.dimse_port)
                vanishing -= 1
            took, failure = _probe(node.dimse_port, part10)
            if failure:
                out.probe_failures.append(f"after {time.monotonic() - started:.0f} s: {failure}")
            else:
                out.probes.append(took)
            peak_fds = max(peak_fds, _count(node.pid, "fd"))
            peak_threads = max(peak_threads, _count(node.pid, "task"))
            if time.monotonic() - started > NEVER_HANGS * 3:
                break
        for t in threads:
            t.join(timeout=NEVER_HANGS)
        if mine.poll(NEVER_HANGS * 2):
            kind, value = mine.recv()
            if kind == "closed":
                out.silent.closed_after = list(value)
        crowd.join(timeout=NEVER_HANGS)
        if crowd.is_alive():
            crowd.kill()
        out.server_fds.append(peak_fds)
        out.server_threads.append(peak_threads)
        _excess(node, plan, out)
        took, failure = _probe(node.dimse_port, part10)
        if failure:
            out.probe_failures.append(f"after the excess: {failure}")
        _slow_http(node.http_port, plan.slow_http, out)
        time.sleep(float(TIMEOUTS["HOUNSFIELD_IDLE_TIMEOUT"]))
        out.server_fds.append(_count(node.pid, "fd"))
        out.server_threads.append(_count(node.pid, "task"))
    finally:
        node.stop()
    return out


def _secs(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f} s"
        f" (n={len(values)})"
    )


def section(out: FloodOutcome, quick: bool) -> str:
    """The markdown section for one run."""
    p = out.plan
    t = TIMEOUTS
    lines = [
        "## Floods and slow clients",
        "",
        f"One `hounsfield serve` (SQLite, one DIMSE process, association timeout"
        f" {t['HOUNSFIELD_ASSOCIATION_TIMEOUT']} s, DIMSE timeout {t['HOUNSFIELD_DIMSE_TIMEOUT']}"
        f" s, idle timeout {t['HOUNSFIELD_IDLE_TIMEOUT']} s, {t['HOUNSFIELD_MAX_ASSOCIATIONS']}"
        " associations at most). While the troublemakers below run, a normal client (DCMTK"
        " `echoscu` then `storescu`, one new association each) keeps asking; then every"
        " association slot is filled and more are asked for at once; then slow HTTP clients."
        f" Form: {'short' if quick else 'long'}. A close or an answer later than"
        f" {NEVER_HANGS:.0f} s counts as never.",
        "",
        "| who | how many | closed by the server after (min / median / max) | left open |",
        "|---|---|---|---|",
        f"| silent TCP connections (never send a byte) | {out.silent.opened} |"
        f" {_secs(out.silent.closed_after)} | {out.silent.left_open} |",
        f"| A-ASSOCIATE-RQ sent one byte a second | {out.dribble_rq.opened} |"
        f" {_secs(out.dribble_rq.closed_after)} | {out.dribble_rq.left_open} |",
        f"| P-DATA-TF sent one byte a second after association | {out.dribble_pdu.opened} |"
        f" {_secs(out.dribble_pdu.closed_after)} | {out.dribble_pdu.left_open} |",
        f"| clients vanishing mid-PDU (TCP reset) | {out.vanished} | - | - |",
        f"| HTTP request header one byte a second | {out.slow_http.opened} |"
        f" {_secs(out.slow_http.closed_after)} | {out.slow_http.left_open} |",
        "",
        f"- Normal client meanwhile: {len(out.probes)} C-ECHO + C-STORE rounds answered"
        f" ({_secs(out.probes)} per round, two DCMTK processes each),"
        f" {len(out.probe_failures)} failed.",
        f"- {p.excess} associations beyond the limit at once (DCMTK `echoscu`, one process"
        f" each): {len(out.excess_rejected)} answered with A-ASSOCIATE-RJ"
        f" ({_secs(out.excess_rejected)}, process start included),"
        f" {len(out.excess_other)} otherwise.",
        f"- Server descriptors before / at the peak / after: "
        f"{' / '.join(str(n) for n in out.server_fds)};"
        f" threads: {' / '.join(str(n) for n in out.server_threads)}.",
        f"- /health during the slow HTTP clients: {len(out.http_failures)} failures.",
    ]
    problems = out.problems
    lines += ["", "Result: " + ("**failures**:" if problems else "no failure.")]
    lines += [f"- {x}" for x in problems[:30]]
    return "\n".join(lines) + "\n"


def run(quick: bool = False) -> str:
    """The flood run, short (`quick`) or long."""
    plan = QUICK if quick else LONG
    with tempfile.TemporaryDirectory(prefix="hf-flood-") as tmp:
        return section(floods(Path(tmp), plan), quick)
