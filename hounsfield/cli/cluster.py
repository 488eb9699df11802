"""`hounsfield cluster`: the nodes and their state; drain, resume and forget a node."""

from __future__ import annotations

from typing import Annotated

import typer

from hounsfield.cli.output import JsonOpt, archive, console, print_json, rows_table, when

app = typer.Typer(help="The nodes of the cluster.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="The node's name (its node_name setting).")]


@app.command("status")
def cluster_status(as_json: JsonOpt = False) -> None:
    """Every node: up, suspect, down, draining or stopped; its last beat and the work it holds."""
    from hounsfield.cluster import nodes

    with archive() as opened:
        s = opened.settings
        rows = nodes.list_nodes(opened.engine, s.heartbeat_seconds, s.node_down_seconds)
    if as_json:
        print_json(r.as_dict() for r in rows)
        return
    rows_table(
        (
            "node",
            "state",
            "address",
            "dimse",
            "http",
            "version",
            "last beat",
            "assoc",
            "holds",
            "problem",
        ),
        (
            (
                r.name,
                r.state,
                r.address,
                str(r.dimse_port),
                str(r.http_port),
                r.version,
                when(r.beat_at),
                str(r.associations),
                str(r.holds),
                r.problem or "-",
            )
            for r in rows
        ),
    )
    if not rows:
        console.print("no node has registered yet (nodes register when `hounsfield serve` starts)")


@app.command("drain")
def cluster_drain(name: NameArg) -> None:
    """Let a node finish its associations and work items and take no new ones (rolling
    upgrades): its /health answers 503 and new associations are refused as transient."""
    from hounsfield.cluster import nodes

    with archive() as opened:
        nodes.set_draining(opened.engine, name, True)
    console.print(f"{name} is draining (within one heartbeat); `cluster resume {name}` undoes it")


@app.command("resume")
def cluster_resume(name: NameArg) -> None:
    """Let a drained node serve again."""
    from hounsfield.cluster import nodes

    with archive() as opened:
        nodes.set_draining(opened.engine, name, False)
    console.print(f"{name} serves again")


@app.command("forget")
def cluster_forget(name: NameArg) -> None:
    """Remove a node that left for good from the registry (it registers again if it starts)."""
    from hounsfield.cluster import nodes

    with archive() as opened:
        s = opened.settings
        row = next(
            (
                r
                for r in nodes.list_nodes(opened.engine, s.heartbeat_seconds, s.node_down_seconds)
                if r.name == name
            ),
            None,
        )
        if row is not None and row.state not in ("down", "stopped"):
            raise typer.BadParameter(f"{name} is {row.state}: stop it first")
        nodes.forget(opened.engine, name)
    console.print(f"{name} forgotten")
