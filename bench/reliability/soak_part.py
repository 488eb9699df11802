"""Soak: 50 concurrent associations (C-STORE, C-FIND, C-GET, C-MOVE) and DICOMweb clients
against one node for minutes, sampling its memory, descriptors and threads."""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import statistics
import subprocess
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from bench.http_ops import multipart_body, stow_content_type
from bench.memory import descendants
from bench.reliability.node import AE_TITLE, LOCALHOST, LiveNode, free_port

ASSOCIATIONS = 50
MAX_ASSOCIATIONS = ASSOCIATIONS + 30  # the node's limit: room for the clients' turnover
PROCESSES = 5  # the associations' client processes (threads inside each)
WEB_CLIENTS = 4  # QIDO, metadata, frames, STOW
OPS_PER_ASSOCIATION = 10  # then released and opened again
STUDIES, SERIES_SIZE = 3, 10  # the corpus that find, get, move and DICOMweb read
DESTINATION = "SOAKSCP"
ROOT_UID = "1.2.826.0.1.3680043.10.1013.7"
SAMPLE_SECONDS = 5.0
WARM_UP_SHARE = 0.2  # of the run: growth is measured from here on


def _ct(**attrs: Any) -> Dataset:
    from tests.synth import instance

    ds = instance(**attrs)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def corpus() -> list[Dataset]:
    """STUDIES studies of one series of SERIES_SIZE instances each."""
    out = []
    for st in range(STUDIES):
        study = f"{ROOT_UID}.{st + 1}"
        for i in range(SERIES_SIZE):
            out.append(
                _ct(
                    StudyInstanceUID=study,
                    SeriesInstanceUID=f"{study}.1",
                    SOPInstanceUID=f"{study}.1.{i + 1}",
                    InstanceNumber=i + 1,
                    PatientID=f"SOAK{st + 1}",
                )
            )
    return out


@dataclass
class Tally:
    """Operations done and failures seen by one client process."""

    done: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def fail(self, kind: str, why: str) -> None:
        """Count one failure of `kind`, keeping the first few reasons."""
        self.failed[kind] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {why}")

    def merge(self, other: Tally) -> None:
        """Add `other`'s counts to these."""
        self.done.update(other.done)
        self.failed.update(other.failed)
        self.examples += other.examples[: max(0, 10 - len(self.examples))]


def _association_loop(kind: str, number: int, port: int, until: float, tally: Tally) -> None:
    """Associate, run OPS_PER_ASSOCIATION operations of `kind`, release; until `until`."""
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import (
        CTImageStorage,
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelMove,
    )

    ae = AE(f"SOAK{number}")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    roles = []
    if kind == "store":
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    elif kind == "find":
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    elif kind == "get":
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        roles = [build_role(CTImageStorage, scp_role=True)]
    else:
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    received = [0]

    def on_store(_event: Any) -> int:
        received[0] += 1
        return 0

    handlers = [(evt.EVT_C_STORE, on_store)] if kind == "get" else []
    n = 0
    while time.monotonic() < until:
        assoc = ae.associate(
            LOCALHOST, port, ae_title=AE_TITLE, ext_neg=roles, evt_handlers=handlers
        )
        if not assoc.is_established:
            answer = assoc.acceptor.primitive if assoc.is_rejected else None
            why = (
                f"A-ASSOCIATE-RJ result {answer.result}, source {answer.result_source},"
                f" reason {answer.diagnostic}"
                if answer is not None
                else "aborted or timed out"
            )
            tally.fail(kind, f"association not established: {why}")
            time.sleep(1.0)
            continue
        tally.done["associations"] += 1
        try:
            for _ in range(OPS_PER_ASSOCIATION):
                if time.monotonic() >= until:
                    break
                study = f"{ROOT_UID}.{n % STUDIES + 1}"
                n += 1
                why = _one(assoc, kind, number, n, study, received)
                if why:
                    tally.fail(kind, why)
                else:
                    tally.done[kind] += 1
        except Exception as exc:
            tally.fail(kind, f"{type(exc).__name__}: {exc}")
        finally:
            if assoc.is_established:
                assoc.release()
            else:
                tally.fail(kind, "association ended by the node")


def _one(assoc: Any, kind: str, number: int, n: int, study: str, received: list[int]) -> str:
    """One operation on `assoc`; '' or what went wrong."""
    from pynetdicom.sop_class import (
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelMove,
    )

    if kind == "store":
        uid = f"{ROOT_UID}.9.{os.getpid()}.{number}"
        ds = _ct(
            StudyInstanceUID=uid,
            SeriesInstanceUID=f"{uid}.1",
            SOPInstanceUID=f"{uid}.1.{n}",
            InstanceNumber=n,
            PatientID="SOAKSTORE",
        )
        status = assoc.send_c_store(ds)
        code = int(status.Status) if "Status" in status else -1
        return "" if code == 0 else f"C-STORE status {code:#06x}"
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES" if kind != "find" else "STUDY"
    query.StudyInstanceUID = study
    if kind == "find":
        query.PatientID = ""
        query.NumberOfStudyRelatedInstances = ""
        answers = list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
        matches = [a for s, a in answers if s and int(s.Status) in (0xFF00, 0xFF01)]
        final = answers[-1][0] if answers else None
        codes = [f"{int(s.Status):#06x}" if s and "Status" in s else "none" for s, _a in answers]
        if final is None or "Status" not in final or int(final.Status) != 0:
            return f"C-FIND did not end with success: {codes}"
        return "" if len(matches) == 1 else f"C-FIND matched {len(matches)} studies: {codes}"
    query.SeriesInstanceUID = f"{study}.1"
    if kind == "get":
        before = received[0]
        answers = list(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet))
        got = received[0] - before
    else:
        answers = list(
            assoc.send_c_move(query, DESTINATION, StudyRootQueryRetrieveInformationModelMove)
        )
        got = SERIES_SIZE
    final = answers[-1][0] if answers else None
    if final is None or "Status" not in final or int(final.Status) != 0:
        code = int(final.Status) if final is not None and "Status" in final else -1
        return f"C-{kind.upper()} ended with {code:#06x}"
    return "" if got == SERIES_SIZE else f"C-GET received {got} of {SERIES_SIZE}"


def _client_process(index: int, kinds: list[str], port: int, until: float, out: Any) -> None:
    """One client process: a thread (one association at a time) per entry of `kinds`.

    The clients run with the archive's pynetdicom fixes installed: pynetdicom's own reactor
    may take a C-FIND response meant for the thread that sent the request (see
    hounsfield/dicomnet/evented.py), which showed here as a C-FIND with no match."""
    from hounsfield.dicomnet.install import install

    install()
    tally = Tally()
    lock = threading.Lock()

    def loop(kind: str, number: int) -> None:
        own = Tally()
        try:
            _association_loop(kind, number, port, until, own)
        except Exception:
            own.fail(kind, traceback.format_exc(limit=3))
        with lock:
            tally.merge(own)

    threads = [
        threading.Thread(target=loop, args=(kind, index * 100 + i)) for i, kind in enumerate(kinds)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((dict(tally.done), dict(tally.failed), tally.examples))


def _web_loop(kind: str, base: str, until: float, tally: Tally) -> None:
    """One DICOMweb client doing `kind` requests until `until`."""
    root = f"{base}/dicomweb"
    n = 0
    with httpx.Client(timeout=60) as http:
        while time.monotonic() < until:
            n += 1
            study = f"{ROOT_UID}.{n % STUDIES + 1}"
            try:
                why = _web_one(http, root, kind, study, n)
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"
            if why:
                tally.fail(f"web-{kind}", why)
            else:
                tally.done[f"web-{kind}"] += 1


def _web_one(http: httpx.Client, root: str, kind: str, study: str, n: int) -> str:
    if kind == "qido":
        rsp = http.get(f"{root}/studies", params={"PatientID": "SOAK*"})
        ok = rsp.status_code == 200 and len(rsp.json()) >= STUDIES
    elif kind == "metadata":
        rsp = http.get(f"{root}/studies/{study}/metadata")
        ok = rsp.status_code == 200 and len(rsp.json()) == SERIES_SIZE
    elif kind == "frames":
        url = f"{root}/studies/{study}/series/{study}.1/instances/{study}.1.1/frames/1"
        rsp = http.get(url, headers={"Accept": "multipart/related; type=application/octet-stream"})
        ok = rsp.status_code == 200 and len(rsp.content) > 0
    else:
        from tests.synth import write_part10

        uid = f"{ROOT_UID}.8.{os.getpid()}"
        ds = _ct(
            StudyInstanceUID=uid,
            SeriesInstanceUID=f"{uid}.1",
            SOPInstanceUID=f"{uid}.1.{n}",
            PatientID="SOAKSTOW",
        )
        buf = io.BytesIO()
        write_part10(ds, buf)
        boundary = "soakboundary"
        rsp = http.post(
            f"{root}/studies",
            content=multipart_body([buf.getvalue()], boundary),
            headers={"Content-Type": stow_content_type(boundary), "Accept": "application/json"},
        )
        ok = rsp.status_code == 200
    return "" if ok else f"HTTP {rsp.status_code}: {rsp.text[:120]}"


@dataclass
class Sample:
    """The node's process tree at one moment."""

    at: float
    rss_mb: float  # the whole tree
    main_rss_mb: float
    fds: int  # the whole tree
    threads: int  # the whole tree


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _count(pid: int, what: str) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/{what}"))
    except OSError:
        return 0


def sample(pid: int, started: float) -> Sample:
    """RSS, descriptors and threads of `pid` and its descendants."""
    pids = descendants(pid)  # `pid` included
    return Sample(
        time.monotonic() - started,
        sum(_status_kb(p, "VmRSS") for p in pids) / 1024,
        _status_kb(pid, "VmRSS") / 1024,
        sum(_count(p, "fd") for p in pids),
        sum(_count(p, "task") for p in pids),
    )


@dataclass
class SoakOutcome:
    """What the clients did and how the node looked over the run."""

    seconds: float
    done: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    idle: Sample | None = None  # after the run, once the clients left

    def _at(self, share: float) -> list[Sample]:
        warm = [s for s in self.samples if s.at >= self.seconds * share]
        return warm or self.samples

    @property
    def warm(self) -> Sample:
        """The first sample after the warm-up."""
        return self._at(WARM_UP_SHARE)[0]

    @property
    def growth(self) -> float:
        """RSS growth of the tree from the end of the warm-up to the end (mean of the last
        three samples), as a fraction."""
        last = self.samples[-3:]
        end = statistics.mean(s.rss_mb for s in last)
        return (end - self.warm.rss_mb) / self.warm.rss_mb if self.warm.rss_mb else 0.0

    @property
    def problems(self) -> list[str]:
        """Failures and growth beyond the limits."""
        out = [f"{n} failed {kind}" for kind, n in sorted(self.failed.items())]
        if self.growth >= 0.10:
            out.append(f"memory grew {self.growth:.1%} after the warm-up")
        return out


def soak(work: Path, seconds: float) -> SoakOutcome:
    """Start a node and a move destination, load the corpus, run the clients for
    `seconds` while sampling the node."""
    node = LiveNode(work / "node", None, {"HOUNSFIELD_MAX_ASSOCIATIONS": str(MAX_ASSOCIATIONS)})
    node.cli("db", "upgrade")
    scp_port = free_port()
    node.cli("device", "add", DESTINATION, LOCALHOST, str(scp_port))
    (work / "scp").mkdir(parents=True, exist_ok=True)
    scp = subprocess.Popen(
        ["storescp", "--ignore", "-aet", DESTINATION, str(scp_port)],
        env={**os.environ, "TCP_NODELAY": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=work / "scp",
    )
    out = SoakOutcome(seconds)
    try:
        node.start()
        _load(node.dimse_port)
        out = _drive(node, seconds)
        time.sleep(SAMPLE_SECONDS)
        out.idle = sample(node.pid, time.monotonic() - seconds - SAMPLE_SECONDS)
    finally:
        node.stop()
        scp.terminate()
        scp.wait(timeout=10)
    return out


def _load(port: int) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    ae = AE("SOAKLOAD")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate(LOCALHOST, port, ae_title=AE_TITLE)
    if not assoc.is_established:
        raise RuntimeError("cannot load the soak corpus: association refused")
    try:
        for ds in corpus():
            status = assoc.send_c_store(ds)
            if int(status.get("Status", -1)) != 0:
                raise RuntimeError(f"cannot load the soak corpus: {status}")
    finally:
        assoc.release()


def _drive(node: LiveNode, seconds: float) -> SoakOutcome:
    out = SoakOutcome(seconds)
    started = time.monotonic()
    until = started + seconds
    kinds = [("store", "find", "get", "move")[i % 4] for i in range(ASSOCIATIONS)]
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    per = ASSOCIATIONS // PROCESSES
    procs = [
        ctx.Process(
            target=_client_process,
            args=(i, kinds[i * per : (i + 1) * per], node.dimse_port, until, results),
            daemon=True,
        )
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    web = Tally()
    base = f"http://{LOCALHOST}:{node.http_port}"
    web_threads = [
        threading.Thread(target=_web_loop, args=(kind, base, until, web))
        for kind in ("qido", "metadata", "frames", "stow")[:WEB_CLIENTS]
    ]
    for t in web_threads:
        t.start()
    while time.monotonic() < until:
        out.samples.append(sample(node.pid, started))
        time.sleep(min(SAMPLE_SECONDS, max(0.0, until - time.monotonic())))
    out.samples.append(sample(node.pid, started))
    for t in web_threads:
        t.join(timeout=120)
    tally = Tally()
    tally.merge(web)
    for _ in procs:
        done, failed, examples = results.get(timeout=180)
        tally.merge(Tally(Counter(done), Counter(failed), examples))
    for p in procs:
        p.join(timeout=30)
    out.done, out.failed, out.examples = tally.done, tally.failed, tally.examples
    return out


def section(out: SoakOutcome, quick: bool) -> str:
    """The markdown section for one soak run."""
    first, warm, last = out.samples[0], out.warm, out.samples[-1]
    peak = max(s.rss_mb for s in out.samples)
    ops = ", ".join(f"{kind} {n}" for kind, n in sorted(out.done.items()))
    idle = out.idle
    failed = ", ".join(f"{k} {n}" for k, n in sorted(out.failed.items()))
    failed = f" ({failed})" if failed else ""
    lines = [
        "## Soak",
        "",
        f"{ASSOCIATIONS} concurrent associations ({PROCESSES} client processes of pynetdicom,"
        " one thread and one association at a time each, an equal share each of C-STORE of new"
        f" instances, C-FIND, C-GET of a {SERIES_SIZE}-instance series and C-MOVE of it to a"
        f" DCMTK `storescp`; each association does {OPS_PER_ASSOCIATION} operations and is"
        " released and opened again) plus DICOMweb clients (one each: QIDO-RS, study"
        " metadata, frames, STOW-RS of one new instance a request) against one `hounsfield"
        f" serve` (SQLite, default settings but `max_associations` {MAX_ASSOCIATIONS})"
        f" for {out.seconds / 60:.0f} min"
        f" ({'short' if quick else 'long'} form). The node's process tree (serve, its DIMSE"
        f" and queue processes) was sampled every {SAMPLE_SECONDS:.0f} s; the warm-up is the"
        f" first {WARM_UP_SHARE:.0%} of the run.",
        "",
        f"- Operations: {ops}.",
        f"- Failures: {sum(out.failed.values())}{failed}.",
        "",
        "| | start | after warm-up | end | peak | idle after the run |",
        "|---|---|---|---|---|---|",
        f"| RSS, whole tree (MB) | {first.rss_mb:.0f} | {warm.rss_mb:.0f} | {last.rss_mb:.0f}"
        f" | {peak:.0f} | {idle.rss_mb if idle else 0:.0f} |",
        f"| RSS, serve process (MB) | {first.main_rss_mb:.0f} | {warm.main_rss_mb:.0f} |"
        f" {last.main_rss_mb:.0f} | {max(s.main_rss_mb for s in out.samples):.0f} |"
        f" {idle.main_rss_mb if idle else 0:.0f} |",
        f"| open descriptors, whole tree | {first.fds} | {warm.fds} | {last.fds} |"
        f" {max(s.fds for s in out.samples)} | {idle.fds if idle else 0} |",
        f"| threads, whole tree | {first.threads} | {warm.threads} | {last.threads} |"
        f" {max(s.threads for s in out.samples)} | {idle.threads if idle else 0} |",
        "",
        f"Memory growth after the warm-up: {out.growth:+.1%} (limit 10 %).",
    ]
    problems = out.problems
    lines += ["", "Result: " + ("**failures**:" if problems else "no failure.")]
    lines += [f"- {p}" for p in problems] + [f"  - e.g. {e}" for e in out.examples[:5]]
    return "\n".join(lines) + "\n"


def run(quick: bool = False) -> str:
    """The soak: 10 minutes, or 1 (`quick`)."""
    seconds = float(os.environ.get("RELIABILITY_SOAK_SECONDS", 60 if quick else 600))
    with tempfile.TemporaryDirectory(prefix="hf-soak-") as tmp:
        return section(soak(Path(tmp), seconds), quick)
