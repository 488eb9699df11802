"""RESULTS.md sections of the forward part: loopback against storescu, and the clinic link."""

from __future__ import annotations

import os
import statistics

from bench.environment import Environment
from bench.forward_bench import QUIET_NODE, Runs
from bench.forward_part import ForwardResults
from bench.forward_timer import POLL
from bench.link import BURST, QUEUE, RECEIVER_NS, SENDER_NS, LinkSpec
from bench.link_bench import SERIES_SIZE, LinkResults
from bench.settings import BenchSettings

LOOPBACK_TARGET = 0.9  # Hounsfield's forward / storescu, instances per second
LINK_TARGET = 0.7  # goodput / the link's nominal rate


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _samples(runs: Runs) -> str:
    return ", ".join(f"{s:.2f}" for s in runs.seconds) or "none"


def _judge(value: float | None, limit: float) -> str:
    return "n/a" if value is None else ("**PASS**" if value >= limit else "**MISS**")


def loopback_table(storescu: Runs, forward: Runs) -> list[str]:
    """instances/s and MB/s of both senders, and their ratio."""
    base = storescu.per_second
    ratio = forward.per_second / base if forward.per_second and base else None
    out = [
        "| Sender | Runs (s) | Median (s) | inst/s | MB/s | HF/storescu | Target | Result |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for runs in (storescu, forward):
        mine = runs is forward
        out.append(
            f"| {runs.label} | {_samples(runs)} | {_num(runs.median, 2)} | "
            f"{_num(runs.per_second)} | {_num(runs.mb_per_second)} | "
            f"{(_num(ratio, 2) + 'x') if mine and ratio else ''} | "
            f"{f'>= {LOOPBACK_TARGET:g}x storescu' if mine else ''} | "
            f"{_judge(ratio, LOOPBACK_TARGET) if mine else ''} |"
        )
    return out


def link_table(link: LinkResults) -> list[str]:
    """Goodput of each sender as a share of the link's nominal rate."""
    rate = link.spec.rate_mbit
    out = [
        f"| Sender | Runs (s) | Median (s) | Goodput (Mbit/s) | MB/s | of {rate:g} Mbit/s | "
        "Target | Result |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for runs in link.runs:
        share = runs.mbit / rate if runs.mbit else None
        mine = runs.label.startswith("Hounsfield")
        out.append(
            f"| {runs.label} | {_samples(runs)} | {_num(runs.median, 2)} | {_num(runs.mbit)} | "
            f"{_num(runs.mb_per_second, 2)} | {_num(share * 100 if share else None, 0)} % | "
            f"{f'>= {LINK_TARGET:.0%}' if mine else ''} | "
            f"{_judge(share, LINK_TARGET) if mine else ''} |"
        )
    return out


def _check_line(link: LinkResults) -> str:
    c, spec = link.check, link.spec
    if c is None:
        return "Link check: not measured."
    return (
        f"Link as measured from the sender's namespace with plain sockets: {c.mbit:.1f} Mbit/s "
        f"bulk TCP goodput and {c.rtt_ms:.1f} ms round trip through the delay proxy (the veth "
        f"alone: {c.veth_mbit:.1f} Mbit/s, {c.veth_rtt_ms:.2f} ms); nominal {spec.rate_mbit:g} "
        f"Mbit/s and {spec.rtt_ms:g} ms. Goodput counts TCP payload, so it sits a few per cent "
        "under the rate tbf enforces on whole packets."
    )


def sections(forward: ForwardResults | None, env: Environment) -> list[str]:
    """The result tables, for the `## Results` section."""
    if forward is None:
        return []
    out = [
        "### Forwarding (Hounsfield node to Orthanc)",
        "",
        f"Orthanc {env.orthanc} (DICOMweb plugin on the link), DCMTK {env.dcmtk}; "
        "seconds run from queuing the forward until every forward row is `sent`.",
        "",
    ]
    if forward.loopback is not None:
        loop = forward.loopback
        out += [
            f"Loopback, {loop.studies} studies, {loop.forward.instances} instances, "
            f"{loop.forward.nbytes / 1e6:,.0f} MB of DICOM files:",
            "",
            *loopback_table(loop.storescu, loop.forward),
            "",
        ]
    if forward.link is not None and forward.link.runs:
        link = forward.link
        out += [
            f"Simulated clinic link ({link.spec.rate_mbit:g} Mbit/s, {link.spec.rtt_ms:g} ms "
            f"round trip), one study of {link.instances} instances, "
            f"{link.nbytes / 1e6:,.1f} MB of DICOM files:",
            "",
            *link_table(link),
            "",
            _check_line(link),
            "",
        ]
    return out


def _link_method(settings: BenchSettings, spec: LinkSpec) -> list[str]:
    n = settings.link_associations
    return [
        f"2. Simulated link: namespaces `{SENDER_NS}` (10.77.0.1, the Hounsfield node) and "
        f"`{RECEIVER_NS}` (10.77.0.2, Orthanc with its DICOMweb plugin) joined by a veth pair, "
        f"each end shaped by `tc qdisc ... tbf rate {spec.rate_mbit:g}mbit burst {BURST} "
        f"latency {QUEUE}`; in the receiver's namespace `bench/delay_proxy.py` listens on "
        f"10.77.0.2 in front of Orthanc's DICOM and HTTP ports and passes every chunk on "
        f"{spec.one_way_ms:g} ms after it arrived, in each direction (a delay line: no rate "
        "limit of its own). Every byte of a forward crosses the shaped veth and the proxy. "
        "`bench/link_check.py` first measures the link from the sender's namespace "
        "(64-byte ping-pong, median of 20; 8 MB bulk transfer), on the veth alone and "
        "through the proxy.",
        f"3. A second node (SQLite index) started in `{SENDER_NS}` imports one study of "
        f"{settings.link_instances} instances (series of {SERIES_SIZE}); one series is "
        "forwarded once by C-STORE and once by STOW-RS, untimed. Then "
        f"{settings.forward_repeats} rounds, each sending the study in turn by C-STORE with 1 "
        f"and with {n} associations (device `--associations`), by STOW-RS with 1 and up to "
        f"{n} requests at once (`--protocol dicomweb --url http://10.77.0.2:.../dicom-web`; "
        "the node posts batches of up to 16 MiB), and by storescu from the sender's "
        "namespace as a reference, each to a fresh Orthanc; the median is kept. Goodput is "
        "the DICOM files' bytes over the time; the target is on the share of the nominal rate.",
        "4. The namespaces (and with them the veth pair) are deleted at the end, also after a "
        "failure or SIGTERM; the commands are in bench/README.md.",
    ]


def method(forward: ForwardResults | None, settings: BenchSettings) -> list[str]:
    """How the forward part measures."""
    if forward is None:
        return []
    spec = forward.link.spec if forward.link else LinkSpec()
    settle = QUIET_NODE["HOUNSFIELD_STUDY_SETTLE_SECONDS"]
    return [
        "Forward part (its own Hounsfield nodes and Orthancs, after the other parts):",
        "",
        f"1. Loopback: a node started as for the DIMSE part (index as there, "
        f"`study_settle_seconds = {settle}` so that the processing of imported studies is "
        f"over before timing) imports {settings.forward_studies} studies of "
        f"{settings.forward_instances} CT instances with `hounsfield import`, and forwards "
        "one series untimed (loading its sending code). Then "
        f"{settings.forward_repeats} rounds, each: storescu (`-R --max-send-pdu 131072`, one "
        "process, wall time) sends every file to a fresh Orthanc; then the node forwards "
        "the same studies to another fresh Orthanc: `bench/forward_timer.py`, beside the "
        "node, declares a new device (PUT /admin/devices, one association), starts the clock, "
        "POSTs /admin/forwards with the studies' date range, and polls GET /admin/forwards "
        f"every {POLL:g} s until every row it queued is `sent` (so a run reads up to {POLL:g} s "
        "long; each GET costs the node a few ms of CPU). The median run is kept. TCP_NODELAY=1 "
        "for the DCMTK tools and Orthanc; the node sets TCP_NODELAY itself.",
        *_link_method(settings, spec),
        "",
    ]


def remarks(forward: ForwardResults | None) -> list[str]:
    """Queue pickup times and failures, for the run remarks."""
    if forward is None:
        return []
    rows = [forward.loopback.forward] if forward.loopback else []
    rows += [r for r in (forward.link.runs if forward.link else []) if r.starts]
    out = [
        f"- Forward, {r.label}: first forward row left `pending` after "
        + ", ".join(f"{s:.2f}" for s in r.starts)
        + f" s (median {statistics.median(r.starts):.2f} s; the node's work queue polls "
        "every second); node CPU per instance "
        + ", ".join(f"{c * 1000 / r.instances:.1f}" for c in r.cpu)
        + " ms, "
        + ", ".join(f"{c / t * 100:.0f}" for c, t in zip(r.cpu, r.seconds, strict=False))
        + " % of a core (its whole process tree during the run, the API polling included)"
        for r in rows
        if r.starts
    ]
    if len(forward.load) == 2:
        out.append(
            f"- Forward part: 1-minute load average {forward.load[0]:.2f} before, "
            f"{forward.load[1]:.2f} after (the machine has {os.cpu_count()} CPUs; anything "
            "else running shows here)"
        )
    if forward.link is not None and forward.link.skipped:
        out.append(f"- Forward, simulated link: {forward.link.skipped}")
    if forward.link is not None and forward.link.stow_requests:
        sizes = forward.link.stow_requests
        out.append(
            f"- Forward, STOW-RS: the node posts the link study as {len(sizes)} request(s) of "
            f"{' + '.join(map(str, sizes))} instances (at most 16 MiB or 200 each), so that "
            f"many at most are in flight at once"
        )
    return out + [f"- FAILED: {e.splitlines()[0]}" for e in forward.errors]


def text(forward: ForwardResults | None) -> str:
    """The tables for the terminal."""
    if forward is None:
        return ""
    parts: list[str] = []
    if forward.loopback is not None:
        loop = forward.loopback
        parts += ["Forwarding, loopback", *loopback_table(loop.storescu, loop.forward), ""]
    if forward.link is not None:
        parts += ["Forwarding, simulated link", *link_table(forward.link), ""]
        parts.append(_check_line(forward.link))
    return "\n".join(parts)
