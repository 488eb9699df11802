"""`hounsfield alerts`: the alerts raised for operators."""

from __future__ import annotations

from typing import Annotated

import typer

from hounsfield.cli.output import JsonOpt, archive, print_json, rows_table, when

app = typer.Typer(help="Alerts raised for operators.", no_args_is_help=True)


@app.command("list")
def alerts_list(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The newest alerts: full disks, failed work items, lost reports, ..."""
    from hounsfield.alerts import list_alerts

    with archive() as opened:
        rows = list_alerts(opened.engine, limit)
    if as_json:
        print_json(rows)
        return
    rows_table(
        ("time", "level", "category", "source", "message"),
        ((when(a.created_at), a.level, a.category, a.source, a.message) for a in rows),
    )
