"""The forward part over a simulated clinic link: goodput of C-STORE and STOW-RS forwarding."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import corpus as corpus_mod
from bench import dicom_ops
from bench.forward_bench import (
    Runs,
    files_of,
    orthanc,
    record,
    start_node,
    study_folders,
    time_forward,
)
from bench.link import RECEIVER_ADDR, RECEIVER_NS, SENDER_NS, LinkSpec, clinic_link, netns
from bench.procs import run, terminate
from bench.servers import Server
from bench.settings import REPO_DIR, BenchSettings
from hounsfield.sites.send_stow import BATCH_BYTES, BATCH_OBJECTS

SERIES_SIZE = 10  # instances per series of the link corpus; the warm-up sends series 1
SINK_PORT, CHECK_PORT = 9100, 9101  # link_check's far end, and the delay proxy in front of it
DIMSE_PORT, HTTP_PORT = 11104, 18042  # the delay proxy in front of Orthanc's two ports
READY_SECONDS = 20.0


@dataclass(frozen=True)
class LinkCheck:
    """What plain sockets measured across the link."""

    veth_rtt_ms: float  # the veth alone (no proxy)
    veth_mbit: float
    rtt_ms: float  # through the delay proxy: what the forwards see
    mbit: float


@dataclass
class LinkResults:
    """The link, its check, and the transfers measured across it."""

    spec: LinkSpec
    instances: int = 0
    nbytes: int = 0
    check: LinkCheck | None = None
    runs: list[Runs] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stow_requests: list[int] = field(default_factory=list)  # instances in each STOW-RS POST
    skipped: str = ""  # why the link was not built


def stow_requests(sizes: list[int]) -> list[int]:
    """Instances per STOW-RS request, batched as the node does (send_stow.batches)."""
    out: list[int] = []
    size = 0
    for n in sizes:
        if not out or size + n > BATCH_BYTES or out[-1] >= BATCH_OBJECTS:
            out.append(0)
            size = 0
        out[-1] += 1
        size += n
    return out


def _started(args: list[str]) -> subprocess.Popen[bytes]:
    """Start a helper that prints "ready" once listening; fail if it does not in time."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, cwd=REPO_DIR)
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], READY_SECONDS)
    if not readable or proc.stdout.readline().strip() != b"ready":
        terminate(proc)
        raise RuntimeError(f"not ready: {' '.join(args)}")
    return proc


def _proxy(spec: LinkSpec, routes: list[tuple[int, int]]) -> subprocess.Popen[bytes]:
    """The delay proxy in the receiver's namespace: RECEIVER_ADDR:a -> 127.0.0.1:b."""
    args = [*netns(RECEIVER_NS), sys.executable, "-m", "bench.delay_proxy"]
    args += ["--delay-ms", f"{spec.one_way_ms:g}"]
    return _started(args + [f"{RECEIVER_ADDR}:{a}=127.0.0.1:{b}" for a, b in routes])


def _probe(port: int) -> dict[str, float]:
    args = [*netns(SENDER_NS), sys.executable, "-m", "bench.link_check", "probe"]
    done = run([*args, RECEIVER_ADDR, str(port)], 120, cwd=REPO_DIR).check()
    answer: dict[str, float] = json.loads(done.stdout)
    return answer


def check_link(spec: LinkSpec) -> LinkCheck:
    """Round trip and bulk rate from the sender's namespace, on the veth alone and through
    the delay proxy."""
    with ExitStack() as stack:
        args = [*netns(RECEIVER_NS), sys.executable, "-m", "bench.link_check", "serve"]
        stack.callback(terminate, _started([*args, "0.0.0.0", str(SINK_PORT)]))
        stack.callback(terminate, _proxy(spec, [(CHECK_PORT, SINK_PORT)]))
        veth, proxied = _probe(SINK_PORT), _probe(CHECK_PORT)
    found = LinkCheck(veth["rtt_ms"], veth["mbit"], proxied["rtt_ms"], proxied["mbit"])
    print(
        f"    link: {found.mbit:.1f} Mbit/s, RTT {found.rtt_ms:.1f} ms through the proxy "
        f"(veth alone: {found.veth_mbit:.1f} Mbit/s, RTT {found.veth_rtt_ms:.2f} ms)",
        flush=True,
    )
    return found


@contextmanager
def _far_end(work: Path, spec: LinkSpec) -> Iterator[Server]:
    """A fresh Orthanc (with DICOMweb) in the receiver's namespace behind the delay proxy."""
    with orthanc(work, web=True, wrap=netns(RECEIVER_NS)) as oc:
        proxy = _proxy(spec, [(DIMSE_PORT, oc.port), (HTTP_PORT, oc.http_port)])
        try:
            yield oc
        finally:
            terminate(proxy)


def _devices(associations: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, AE title prefix, device) of each forwarding configuration measured."""
    dimse: dict[str, Any] = {"host": RECEIVER_ADDR, "port": DIMSE_PORT}
    url = f"http://{RECEIVER_ADDR}:{HTTP_PORT}/dicom-web"
    web = dimse | {"protocol": "dicomweb", "url": url}
    n = associations
    return [
        ("Hounsfield C-STORE, 1 association", "LNKD1", dimse | {"associations": 1}),
        (f"Hounsfield C-STORE, {n} associations", "LNKDN", dimse | {"associations": n}),
        ("Hounsfield STOW-RS, 1 request at a time", "LNKW1", web | {"associations": 1}),
        (f"Hounsfield STOW-RS, up to {n} requests at once", "LNKWN", web | {"associations": n}),
    ]


def _send(
    node: Server,
    oc: Server,
    prefix: str,
    device: dict[str, Any] | None,
    n: int,
    runs: Runs,
    settings: BenchSettings,
    corpus: corpus_mod.Corpus,
) -> None:
    """One timed transfer of the study: a forward to `device`, or storescu when None."""
    if device is not None:
        ask = {"destination": f"{prefix}R{n}", "study": corpus.studies[0].uid}
        record(runs, time_forward(node, device, ask, settings.timeout))
        return
    files, wrap = files_of(corpus), netns(SENDER_NS)
    took = dicom_ops.store(oc.ae_title, DIMSE_PORT, files, 1, settings.timeout, RECEIVER_ADDR, wrap)
    record(runs, {"seconds": took.seconds})


def _measure(settings: BenchSettings, out: LinkResults, corpus: corpus_mod.Corpus) -> None:
    work, spec, study = settings.work_dir / "forward-link", out.spec, corpus.studies[0]
    configs = _devices(settings.link_associations)
    plan: list[tuple[Runs, str, dict[str, Any] | None]] = [
        (Runs(label, out.instances, out.nbytes), prefix, device)
        for label, prefix, device in configs
    ]
    reference = "DCMTK storescu, 1 association (reference)"
    plan.append((Runs(reference, out.instances, out.nbytes), "", None))
    out.runs = [runs for runs, _, _ in plan]
    out.check = check_link(spec)
    node = start_node(settings, work, study_folders(corpus), wrap=netns(SENDER_NS))
    try:
        with _far_end(work, spec):  # untimed warm-up: one series each way
            warm = {"study": study.uid, "series": study.series[0].uid}
            for _, prefix, warm_device in (configs[0], configs[2]):
                time_forward(node, warm_device, {"destination": f"{prefix}W", **warm}, 600)
        for n in range(1, settings.forward_repeats + 1):
            for runs, prefix, device in plan:
                try:
                    with _far_end(work, spec) as oc:
                        _send(node, oc, prefix, device, n, runs, settings, corpus)
                except Exception as exc:
                    print(f"      {runs.label}: FAILED {str(exc).splitlines()[0]}", flush=True)
                    out.errors.append(f"{runs.label}: {exc}\n{traceback.format_exc(limit=3)}")
    finally:
        node.stop()


def measure_link(settings: BenchSettings) -> LinkResults:
    """Build the link, check it, forward the link corpus over it; always tear it down."""
    spec = LinkSpec(settings.link_rate_mbit, settings.link_rtt_ms)
    out = LinkResults(spec)
    corpus, _ = corpus_mod.ensure(
        settings.link_corpus_dir, 1, settings.link_instances, SERIES_SIZE, "LINK"
    )
    corpus_mod.warm(corpus)
    out.instances = corpus.instance_count
    sizes = [f.stat().st_size for f in files_of(corpus)]
    out.nbytes, out.stow_requests = sum(sizes), stow_requests(sizes)
    print(
        f"\n== forward, simulated link ({spec.rate_mbit:g} Mbit/s, {spec.rtt_ms:g} ms RTT): "
        f"{out.instances} instances, {out.nbytes / 1e6:,.1f} MB",
        flush=True,
    )
    if os.geteuid() != 0:
        out.skipped = "not run: building network namespaces needs root"
        print(f"    {out.skipped}", flush=True)
        return out
    try:
        with clinic_link(spec):
            _measure(settings, out, corpus)
    except Exception as exc:
        out.errors.append(f"simulated link: {exc}\n{traceback.format_exc(limit=4)}")
        print(f"    FAILED: {str(exc).splitlines()[0]}", flush=True)
    return out
