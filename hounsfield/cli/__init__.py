"""The `hounsfield` command: the typer app, its settings callback and every command group."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from hounsfield.audit.events import command_line_actor, set_actor
from hounsfield.cli import (
    alerts,
    audit,
    client,
    cluster,
    compress,
    db,
    devices,
    filesystems,
    forward,
    imports,
    metadata,
    output,
    partitions,
    queue,
    reconcile,
    rules,
    serve,
    services,
    status,
    study,
    tokens,
    users,
    verify,
)
from hounsfield.node import logs
from hounsfield.settings import load_settings

app = typer.Typer(help="Hounsfield DICOM archive.", no_args_is_help=True)


@app.callback()
def main(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML settings file.", exists=True)
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Load settings once for every command."""
    logs.configure(logging.DEBUG if verbose else logging.INFO, verbose)
    output.use_settings(load_settings(config))
    set_actor(command_line_actor())  # what a command changes is recorded as done by its user


app.command("serve")(serve.serve)
app.command("import")(imports.import_)
app.command("status")(status.status)
app.command("verify")(verify.verify)
app.command("echo")(devices.echo)
app.command("forward")(forward.forward)
app.command("compress")(compress.compress)
app.command("send")(client.send)
app.command("find")(client.find)
app.command("get")(client.get)
app.command("move")(client.move)
for _group, _name in (
    (db.app, "db"),
    (devices.app, "device"),
    (partitions.app, "partition"),
    (metadata.app, "metadata"),
    (alerts.app, "alerts"),
    (audit.app, "audit"),
    (queue.app, "queue"),
    (filesystems.app, "filesystem"),
    (rules.app, "rule"),
    (forward.app, "forwards"),
    (services.app, "services"),
    (reconcile.app, "reconcile"),
    (cluster.app, "cluster"),
    (study.app, "study"),
    (users.app, "user"),
    (tokens.app, "token"),
):
    app.add_typer(_group, name=_name)
