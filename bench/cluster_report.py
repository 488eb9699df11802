"""RESULTS.md section of the cluster part, placed into the text the other parts produced."""

from __future__ import annotations

import statistics

from bench.cluster_part import CPU_PARTS, ClusterResults


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "n/a"


def sections(cluster: ClusterResults) -> list[str]:
    """The result tables."""
    out = [
        "### Cluster behind HAProxy (deploy/haproxy.cfg, shared PostgreSQL)",
        "",
        f"Ingest of {cluster.instances} small CT instances through HAProxy, "
        f"{cluster.associations} storescu associations at once:",
        "",
        "| Nodes | Runs (s) | Median (s) | inst/s |",
        "|---:|---|---:|---:|",
    ]
    for t in cluster.throughput:
        runs = ", ".join(f"{s:.2f}" for s in t.seconds) or "failed"
        rate = f"{t.per_second:,.0f}" if t.per_second else "n/a"
        out.append(f"| {t.nodes} | {runs} | {_median(t.seconds)} | {rate} |")
    out += [
        "",
        "Where the CPU time goes (median CPU milliseconds per instance, all processes of each "
        "part; the machine has 2 cores, so the parts compete for them):",
        "",
        "| Nodes | " + " | ".join(CPU_PARTS) + " | total |",
        "|---:|" + "---:|" * (len(CPU_PARTS) + 1),
    ]
    for t in cluster.throughput:
        values = [t.cpu_ms_per_instance(part) for part in CPU_PARTS]
        cells = [f"{v:.2f}" if v is not None else "n/a" for v in values]
        total = sum(v for v in values if v is not None)
        out.append(f"| {t.nodes} | " + " | ".join(cells) + f" | {total:.2f} |")
    kills = cluster.kills
    out += [
        "",
        f"kill -9 of a node under load (three nodes, {len(kills)} kills, median):",
        "",
        "| Measure | Runs | Median |",
        "|---|---|---:|",
        f"| kill -> HAProxy marks it DOWN (s) | {', '.join(f'{k.down:.2f}' for k in kills)} | "
        f"{_median([k.down for k in kills])} |",
        f"| kill -> first new association through HAProxy (s) | "
        f"{', '.join(f'{k.back:.2f}' for k in kills)} | {_median([k.back for k in kills])} |",
        f"| work items the dead node held / reclaimed by the others | "
        f"{', '.join(f'{k.held}/{k.reclaimed}' for k in kills)} | |",
        "",
    ]
    return out


def method(cluster: ClusterResults) -> list[str]:
    """How the cluster part measures."""
    return [
        "Cluster part: `hounsfield serve` nodes on 127.0.0.2, .3, .4 (one DIMSE process each, "
        "`queue_lease_seconds = 5`) sharing one fresh PostgreSQL database and one storage "
        "folder, behind HAProxy started with the shipped deploy/haproxy.cfg (`inter 1s fall 2 "
        "rise 2`, the DICOM check: A-ASSOCIATE-RQ, A-ASSOCIATE-AC expected, A-RELEASE, then "
        "/health). Throughput: for one, two and three nodes a fresh cluster, 20 instances "
        f"untimed, then runs of {cluster.instances} new instances split over "
        f"{cluster.associations} storescu processes (TCP_NODELAY=1), wall time, median kept. "
        "Kill: four pynetdicom senders push 800 instances (re-sending what was not "
        "acknowledged after an abort); after 300 acknowledgements the node with the most "
        "sessions gets SIGKILL (its process group); HAProxy's runtime API is polled for its "
        "DOWN state and echoscu opens associations through HAProxy until one succeeds; "
        "the node is restarted before the next kill.",
        "",
    ]


def insert(text: str, cluster: ClusterResults | None) -> str:
    """`text` (RESULTS.md) with the cluster section before `## Method`, its method before
    `## Run remarks` and its errors at the end of the remarks."""
    if cluster is None:
        return text
    text = text.replace("## Method\n", "\n".join(sections(cluster)) + "\n## Method\n", 1)
    text = text.replace("## Run remarks\n", "\n".join(method(cluster)) + "\n## Run remarks\n", 1)
    errors = "".join(f"- {e.splitlines()[0]}\n" for e in cluster.errors)
    return text.replace("## Run remarks\n\n", "## Run remarks\n\n" + errors, 1)


def text(cluster: ClusterResults) -> str:
    """A plain summary for the console."""
    return "\n".join(sections(cluster))
