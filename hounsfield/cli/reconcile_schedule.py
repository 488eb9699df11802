"""`hounsfield reconcile schedule`: add, list and remove scheduled reconciliations."""

from __future__ import annotations

from typing import Annotated

import typer

from hounsfield.cli.output import JsonOpt, archive, console, print_json, rows_table, when

app = typer.Typer(help="Scheduled reconciliations.", no_args_is_help=True)


@app.command("add")
def schedule_add(
    name: Annotated[str, typer.Argument(help="The job's name.")],
    partition: Annotated[str, typer.Argument(help="Partition AE title.")],
    peer: Annotated[str, typer.Option("--with", help="The peer device's AE title.")],
    period: Annotated[
        str, typer.Option(help="yesterday or last-7-days (nightly), last-month (on the 1st).")
    ] = "yesterday",
    direction: Annotated[str, typer.Option(help="none, fetch, push or both.")] = "none",
    instances: Annotated[
        bool,
        typer.Option(
            "--instances", help="Compare every series instance by instance, not only counts."
        ),
    ] = False,
    at: Annotated[str, typer.Option(help="Time of day, HH:MM (node's local time).")] = "02:00",
    disabled: Annotated[bool, typer.Option("--disabled", help="Keep it, do not run it.")] = False,
) -> None:
    """Add or change a scheduled reconciliation (the reconcile-with-peers service runs it;
    enable the service with `hounsfield services enable reconcile-with-peers`)."""
    from hounsfield.sites.reconcile_schedule import add_job

    with archive(code=1) as opened:
        new = add_job(
            opened,
            name,
            partition,
            peer,
            period=period,
            direction=direction,
            depth="instances" if instances else "counts",
            at=at,
            enabled=not disabled,
        )
    console.print(f"{'added' if new else 'changed'} {name}", markup=False)


@app.command("list")
def schedule_list(as_json: JsonOpt = False) -> None:
    """The scheduled reconciliations and when each runs next."""
    from hounsfield.sites.reconcile_schedule import list_jobs

    with archive() as opened:
        jobs = list_jobs(opened.engine)
    if as_json:
        print_json(jobs)
        return
    rows_table(
        (
            "name",
            "partition",
            "peer",
            "period",
            "repair",
            "compares",
            "at",
            "enabled",
            "next",
            "last report",
        ),
        (
            (
                j.name,
                j.partition,
                j.peer,
                j.period,
                j.direction,
                j.depth,
                j.at,
                "yes" if j.enabled else "no",
                when(j.next_run_at.astimezone()),
                f"#{j.last_report}" if j.last_report else "-",
            )
            for j in jobs
        ),
    )


@app.command("remove")
def schedule_remove(name: str) -> None:
    """Remove a scheduled reconciliation (its reports stay)."""
    from hounsfield.sites.reconcile_schedule import remove_job

    with archive(code=1) as opened:
        remove_job(opened.engine, name)
    console.print(f"removed {name}", markup=False)
