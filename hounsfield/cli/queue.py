"""`hounsfield queue`: list, inspect, retry, cancel and run WorkQueue items."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer

from hounsfield.cli.output import JsonOpt, archive, console, print_json, rows_table, when
from hounsfield.errors import InvalidDataset
from hounsfield.workqueue.items import WorkItem

app = typer.Typer(help="The WorkQueue.", no_args_is_help=True)


def _item(item: WorkItem) -> dict[str, Any]:
    out = asdict(item)
    out.pop("lease_token", None)
    return out


@app.command("list")
def queue_list(
    status: Annotated[str | None, typer.Option(help="Only items in this status.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only items of this kind.")] = None,
    limit: int = 100,
    as_json: JsonOpt = False,
) -> None:
    """Work items, most urgent first, with counts per status."""
    from hounsfield.workqueue import admin

    with archive() as opened:
        try:
            items = admin.list_items(opened.engine, status=status, kind=kind, limit=limit)
        except ValueError as exc:
            raise InvalidDataset(f"unknown status {status!r}") from exc
        counts = admin.counts(opened.engine)
    if as_json:
        print_json(_item(i) for i in items)
        return
    rows_table(
        ("id", "kind", "priority", "status", "scheduled", "failures", "node", "payload"),
        (
            (
                str(i.pk),
                i.kind,
                str(i.priority),
                i.status,
                when(i.scheduled_at),
                f"{i.failure_count}/{i.max_retries}",
                i.node or "-",
                json.dumps(i.payload)[:60],
            )
            for i in items
        ),
    )
    console.print("  ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "queue empty")


@app.command("show")
def queue_show(pk: int) -> None:
    """Everything about one work item."""
    from hounsfield.workqueue import admin

    with archive() as opened:
        item = admin.get_item(opened.engine, pk)
    for key, value in item.__dict__.items():
        shown = json.dumps(value) if key == "payload" else value
        console.print(f"{key:>16}: {shown}", markup=False)


@app.command("retry")
def queue_retry(pk: int) -> None:
    """Run a failed or cancelled item again."""
    from hounsfield.workqueue import admin

    with archive() as opened:
        console.print(f"work item {pk} is {admin.retry(opened.engine, pk).status}")


@app.command("cancel")
def queue_cancel(pk: int) -> None:
    """Cancel an item that has not finished."""
    from hounsfield.workqueue import admin

    with archive() as opened:
        console.print(f"work item {pk} is {admin.cancel(opened.engine, pk).status}")


@app.command("work")
def queue_work(
    threads: Annotated[int | None, typer.Option(help="Worker threads.")] = None,
) -> None:
    """Run the ready items in this process until none is left (no server needed)."""
    from hounsfield.workers.runner import Worker

    with archive() as opened:
        done = Worker(opened, threads=threads).run_until_idle()
    console.print(f"ran {done} work items")
