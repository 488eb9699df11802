"""`hounsfield services`: list, run, enable and disable the scheduled services."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hounsfield.cli.output import JsonOpt, archive, console, print_json, rows_table, when

app = typer.Typer(help="Scheduled services.", no_args_is_help=True)


@app.command("list")
def services_list(as_json: JsonOpt = False) -> None:
    """Scheduled services, whether enabled and locked, and their last result."""
    from hounsfield.scheduled import lock
    from hounsfield.scheduled.scheduler import ensure_services

    with archive() as opened:
        ensure_services(opened)
        rows = lock.list_services(opened.engine)
    if as_json:
        print_json(rows)
        return
    rows_table(
        ("service", "enabled", "every", "next run", "locked by", "last run", "result"),
        (
            (
                r.name,
                "yes" if r.enabled else "no",
                f"{r.interval_seconds} s",
                when(r.next_run_at),
                (r.locked_by or "?") if r.locked else "-",
                when(r.last_run_at),
                r.last_result[:80],
            )
            for r in rows
        ),
    )


@app.command("run")
def services_run(name: str) -> None:
    """Run a service now in this process (enabled or not), unless a node is running it."""
    from hounsfield.scheduled.scheduler import ensure_services, run_service

    with archive() as opened:
        ensure_services(opened)
        result = run_service(opened, name, force=True)
    if result is None:
        console.print(f"[yellow]{name} is running on another node[/yellow]")
        raise typer.Exit(1)
    console.print(f"{name}: {result}", markup=False)


def _configure(name: str, **values: Any) -> None:
    from hounsfield.scheduled import lock
    from hounsfield.scheduled.scheduler import ensure_services

    with archive() as opened:
        ensure_services(opened)
        row = lock.configure(opened.engine, name, **values)
    console.print(
        f"{row.name}: {'enabled' if row.enabled else 'disabled'}, every {row.interval_seconds} s"
    )


@app.command("enable")
def services_enable(
    name: str, every: Annotated[int | None, typer.Option(help="Interval, seconds.")] = None
) -> None:
    """Enable a service (it runs at the next scheduler pass)."""
    _configure(name, enabled=True, interval_seconds=every)


@app.command("disable")
def services_disable(name: str) -> None:
    """Disable a service."""
    _configure(name, enabled=False)
