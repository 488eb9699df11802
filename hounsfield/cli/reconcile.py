"""`hounsfield reconcile`: compare a partition with a peer and repair; its reports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from hounsfield.cli import reconcile_schedule as schedule
from hounsfield.cli.output import JsonOpt, archive, err_console, print_json, rows_table, when

if TYPE_CHECKING:
    from hounsfield.sites.reconcile_model import Progress as ProgressFn


class _RunByDefault(TyperGroup):
    """`reconcile PARTITION ...` is `reconcile run PARTITION ...`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click Context
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_RunByDefault,
    no_args_is_help=True,
    help="Compare a partition with a peer, fetch or push what differs; reports; schedule. "
    "`hounsfield reconcile PARTITION --with DEVICE --from DATE --to DATE` runs one.",
)
app.add_typer(schedule.app, name="schedule")


@contextmanager
def _progress() -> Iterator[ProgressFn]:
    """A progress bar on stderr, fed by the operator's progress reports."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("connecting", total=None)

        def update(phase: str, done: int, total: int | None) -> None:
            bar.update(task, description=phase, completed=done, total=total)

        yield update


@app.command("run")
def run(
    partition: Annotated[str, typer.Argument(help="Partition AE title.")],
    peer: Annotated[str, typer.Option("--with", help="The peer device's AE title.")],
    date_from: Annotated[str, typer.Option("--from", help="First study date (YYYYMMDD).")],
    date_to: Annotated[str, typer.Option("--to", help="Last study date (YYYYMMDD).")],
    fetch: Annotated[bool, typer.Option("--fetch", help="Retrieve what is missing here.")] = False,
    push: Annotated[bool, typer.Option("--push", help="Send what the peer lacks.")] = False,
    method: Annotated[
        str, typer.Option("--retrieve", help="How to fetch: auto (C-GET, else C-MOVE), get, move.")
    ] = "auto",
    instances: Annotated[
        bool,
        typer.Option(
            "--instances", help="Compare every series instance by instance, not only counts."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    background: Annotated[
        bool,
        typer.Option("--background", help="Queue it as a work item for any node to run."),
    ] = False,
) -> None:
    """Compare the partition's studies of a date range with the peer's, day by day, then
    study, series and instance where the counts differ (every series with --instances); exit
    1 when differences are left."""
    from hounsfield.cli.reconcile_show import show_report
    from hounsfield.dicomnet.install import install
    from hounsfield.sites.reconcile import reconcile
    from hounsfield.sites.reconcile_model import direction_of
    from hounsfield.sites.reconcile_queue import queue_reconcile

    request = (partition, peer, date_from, date_to)
    direction = direction_of(fetch, push)
    depth = "instances" if instances else "counts"
    if background:
        with archive() as opened:
            item = queue_reconcile(
                opened, *request, direction=direction, method=method, depth=depth
            )
        typer.echo(f"queued as work item #{item}" if item else "already queued, waiting")
        return
    install()  # the SCU layer's fast paths (and raw sending, which --push needs)
    with archive() as opened, _progress() as progress:
        report = reconcile(
            opened, *request, direction=direction, method=method, depth=depth, progress=progress
        )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        show_report(report)
    if report.state == "failed" or report.differences_left:
        raise typer.Exit(1)


@app.command("report")
def report(
    pk: Annotated[int | None, typer.Argument(help="Report number; none: list them.")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="The differences as CSV.")] = False,
    partition: Annotated[str | None, typer.Option(help="Only this partition's.")] = None,
    peer: Annotated[str | None, typer.Option("--with", help="Only with this peer.")] = None,
    limit: int = 50,
    as_json: JsonOpt = False,
) -> None:
    """List the reports (newest first), or show one with its differences."""
    from hounsfield.cli.reconcile_show import show_report
    from hounsfield.sites.reconcile_csv import report_csv
    from hounsfield.sites.reconcile_reports import get_report, list_reports

    with archive(code=1) as opened:
        if pk is None:
            rows = list_reports(opened.engine, partition=partition, peer=peer, limit=limit)
        else:
            one = get_report(opened.engine, pk)
    if pk is None:
        if as_json:
            print_json(r.to_dict() for r in rows)
            return
        rows_table(
            (
                "#",
                "partition",
                "peer",
                "dates",
                "repair",
                "state",
                "missing",
                "extra",
                "left",
                "end",
            ),
            (
                (
                    str(r.pk),
                    r.partition,
                    r.peer,
                    f"{r.date_from}-{r.date_to}",
                    r.direction,
                    r.state,
                    str(r.missing),
                    str(r.extra),
                    str(r.differences_left),
                    when(r.finished_at or r.started_at),
                )
                for r in rows
            ),
        )
    elif as_csv:
        typer.echo(report_csv(one), nl=False)
    elif as_json:
        typer.echo(json.dumps(one.to_dict(), indent=2))
    else:
        show_report(one)
