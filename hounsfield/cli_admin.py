"""`hounsfield queue|filesystem|rule|services`: the storage-management commands."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hounsfield.archive.context import Archive
from hounsfield.errors import ArchiveError, InvalidDataset

console = Console()
queue_app = typer.Typer(help="The WorkQueue.", no_args_is_help=True)
filesystem_app = typer.Typer(
    help="Storage filesystems, tiers and watermarks.", no_args_is_help=True
)
rule_app = typer.Typer(help="Server rules.", no_args_is_help=True)
services_app = typer.Typer(help="Scheduled services.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts raised for operators.", no_args_is_help=True)
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


@contextmanager
def _archive() -> Iterator[Archive]:
    from hounsfield.cli import _archive as open_it

    archive = open_it()
    try:
        yield archive
    except ArchiveError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc
    finally:
        archive.close()


def _size(text: str | None) -> int | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in _UNITS:
        raise typer.BadParameter(f"cannot read size {text!r}; write e.g. 500GB or 2TiB")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


# -- queue ----------------------------------------------------------------------------------


@queue_app.command("list")
def queue_list(
    status: Annotated[str | None, typer.Option(help="Only items in this status.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only items of this kind.")] = None,
    limit: int = 100,
) -> None:
    """Work items, most urgent first, with counts per status."""
    from hounsfield.workqueue import admin

    with _archive() as archive:
        try:
            items = admin.list_items(archive.engine, status=status, kind=kind, limit=limit)
        except ValueError as exc:
            raise InvalidDataset(f"unknown status {status!r}") from exc
        counts = admin.counts(archive.engine)
    table = Table("id", "kind", "priority", "status", "scheduled", "failures", "node", "payload")
    for i in items:
        table.add_row(
            str(i.pk),
            i.kind,
            str(i.priority),
            i.status,
            _when(i.scheduled_at),
            f"{i.failure_count}/{i.max_retries}",
            i.node or "-",
            json.dumps(i.payload)[:60],
        )
    console.print(table)
    console.print("  ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "queue empty")


@queue_app.command("show")
def queue_show(pk: int) -> None:
    """Everything about one work item."""
    from hounsfield.workqueue import admin

    with _archive() as archive:
        item = admin.get_item(archive.engine, pk)
    for key, value in item.__dict__.items():
        console.print(f"{key:>16}: {json.dumps(value) if key == 'payload' else value}")


@queue_app.command("retry")
def queue_retry(pk: int) -> None:
    """Run a failed or cancelled item again."""
    from hounsfield.workqueue import admin

    with _archive() as archive:
        console.print(f"work item {pk} is {admin.retry(archive.engine, pk).status}")


@queue_app.command("cancel")
def queue_cancel(pk: int) -> None:
    """Cancel an item that has not finished."""
    from hounsfield.workqueue import admin

    with _archive() as archive:
        console.print(f"work item {pk} is {admin.cancel(archive.engine, pk).status}")


@queue_app.command("work")
def queue_work(
    threads: Annotated[int | None, typer.Option(help="Worker threads.")] = None,
) -> None:
    """Run the ready items in this process until none is left (no server needed)."""
    from hounsfield.workqueue.worker import Worker

    with _archive() as archive:
        done = Worker(archive, threads=threads).run_until_idle()
    console.print(f"ran {done} work items")


# -- filesystems ----------------------------------------------------------------------------


def _fs_options(
    tier: int | None,
    capacity: str | None,
    low: int | None,
    high: int | None,
    read_only: bool | None,
    write_only: bool | None,
    enabled: bool | None,
) -> dict[str, Any]:
    values = {
        "tier": tier,
        "low_watermark": low,
        "high_watermark": high,
        "read_only": read_only,
        "write_only": write_only,
        "enabled": enabled,
    }
    if capacity is not None:
        values["capacity_bytes"] = None if capacity.lower() == "disk" else _size(capacity)
    return {k: v for k, v in values.items() if v is not None or k == "capacity_bytes"}


TierOpt = Annotated[int | None, typer.Option(help="Tier 1 (fastest) to 3.")]
CapOpt = Annotated[str | None, typer.Option(help="Capacity, e.g. 2TB; 'disk' for the disk's.")]
LowOpt = Annotated[int | None, typer.Option("--low", help="Low watermark, percent.")]
HighOpt = Annotated[int | None, typer.Option("--high", help="High watermark, percent.")]
RoOpt = Annotated[bool | None, typer.Option("--read-only/--writable")]
WoOpt = Annotated[bool | None, typer.Option("--write-only/--readable")]
EnOpt = Annotated[bool | None, typer.Option("--enabled/--disabled")]


@filesystem_app.command("add")
def filesystem_add(
    path: Path,
    tier: TierOpt = 1,
    capacity: CapOpt = None,
    low: LowOpt = None,
    high: HighOpt = None,
    read_only: RoOpt = None,
    write_only: WoOpt = None,
    enabled: EnOpt = None,
) -> None:
    """Add a filesystem (or update the one at PATH)."""
    from hounsfield.storage.tiers import add_filesystem

    values = _fs_options(tier, capacity, low, high, read_only, write_only, enabled)
    with _archive() as archive:
        new = add_filesystem(archive.engine, path, **values)
    console.print(f"{'added' if new else 'updated'} {path.resolve()}")


@filesystem_app.command("set")
def filesystem_set(
    path: Path,
    tier: TierOpt = None,
    capacity: CapOpt = None,
    low: LowOpt = None,
    high: HighOpt = None,
    read_only: RoOpt = None,
    write_only: WoOpt = None,
    enabled: EnOpt = None,
) -> None:
    """Change a filesystem's settings."""
    from hounsfield.storage.tiers import set_filesystem

    values = _fs_options(tier, capacity, low, high, read_only, write_only, enabled)
    if capacity is None:
        values.pop("capacity_bytes", None)
    with _archive() as archive:
        set_filesystem(archive.engine, path, **values)
    console.print(f"updated {path.resolve()}")


@filesystem_app.command("remove")
def filesystem_remove(path: Path) -> None:
    """Forget an empty filesystem."""
    from hounsfield.storage.tiers import remove_filesystem

    with _archive() as archive:
        remove_filesystem(archive.engine, path)
    console.print(f"removed {path.resolve()}")


@filesystem_app.command("list")
def filesystem_list() -> None:
    """Filesystems by tier with their watermarks and usage."""
    from hounsfield.storage.tiers import list_filesystems

    with _archive() as archive:
        usages = list_filesystems(archive.engine)
    table = Table("path", "tier", "flags", "low", "high", "used", "capacity", "%")
    for u in usages:
        flags = ",".join(
            f
            for f, on in (("disabled", not u.enabled), ("ro", u.read_only), ("wo", u.write_only))
            if on
        )
        table.add_row(
            u.path,
            str(u.tier),
            flags or "-",
            str(u.low_watermark),
            str(u.high_watermark),
            str(u.used_bytes),
            str(u.total_bytes) if u.total_bytes else "unreachable",
            f"{u.percent:.1f}" if u.percent is not None else "-",
        )
    console.print(table)


# -- rules ----------------------------------------------------------------------------------


@rule_app.command("add")
def rule_add(
    name: str,
    action: Annotated[str, typer.Option(help="tier1-retention, archive-copy, delete, ...")],
    when: Annotated[
        list[str] | None,
        typer.Option(help="Condition: Attr=V, Attr=A|B, Attr~regex, Attr?, !Attr; CallingAE=X"),
    ] = None,
    any_: Annotated[bool, typer.Option("--any", help="Any condition suffices.")] = False,
    after: Annotated[str, typer.Option(help="Delay, e.g. '3 weeks'.")] = "0 days",
    time_from: Annotated[str, typer.Option("--from", help="receipt or study-date.")] = "receipt",
    exempt: bool = False,
    default: Annotated[bool, typer.Option("--default", help="Applies when no rule does.")] = False,
    partition: Annotated[str | None, typer.Option(help="Only this partition.")] = None,
    syntax: Annotated[str | None, typer.Option(help="Compression syntax.")] = None,
    ratio: Annotated[float | None, typer.Option(help="Lossy compression ratio.")] = None,
    tier: Annotated[int | None, typer.Option(help="Archive copy tier.")] = None,
) -> None:
    """Add a rule, or replace the one with this name."""
    from hounsfield.rules.model import Rule, parse_after, parse_condition
    from hounsfield.rules.store import save_rule

    params: dict[str, Any] = {}
    if syntax:
        params["syntax"] = syntax
    if ratio:
        params["ratio"] = ratio
    if tier:
        params["tier"] = tier
    with _archive() as archive:
        rule = Rule(
            name=name,
            action=action,
            conditions=tuple(parse_condition(c) for c in when or []),
            match="any" if any_ else "all",
            after_seconds=parse_after(after),
            time_from=time_from,  # type: ignore[arg-type]
            exempt=exempt,
            is_default=default,
            partition=partition,
            params=params,
        )
        new = save_rule(archive.engine, rule)
    console.print(f"{'added' if new else 'replaced'} rule {name}")


@rule_app.command("list")
def rule_list() -> None:
    """Rules in evaluation order."""
    from hounsfield.rules.model import format_after
    from hounsfield.rules.store import list_rules

    with _archive() as archive:
        rules = list_rules(archive.engine)
    table = Table("name", "action", "conditions", "timing", "kind", "partition", "params")
    for r in rules:
        joiner = " and " if r.match == "all" else " or "
        kind = "exempt" if r.exempt else "default" if r.is_default else "rule"
        table.add_row(
            r.name,
            r.action,
            joiner.join(str(c) for c in r.conditions) or "-",
            f"after {format_after(r.after_seconds)} from {r.time_from}",
            kind if r.enabled else f"{kind} (disabled)",
            r.partition or "all",
            json.dumps(r.params) if r.params else "-",
        )
    console.print(table)


@rule_app.command("remove")
def rule_remove(name: str) -> None:
    """Remove a rule."""
    from hounsfield.rules.store import remove_rule

    with _archive() as archive:
        remove_rule(archive.engine, name)
    console.print(f"removed rule {name}")


# -- services -------------------------------------------------------------------------------


@services_app.command("list")
def services_list() -> None:
    """Scheduled services, whether enabled and locked, and their last result."""
    from hounsfield.scheduled import lock
    from hounsfield.scheduled.scheduler import ensure_services

    with _archive() as archive:
        ensure_services(archive)
        rows = lock.list_services(archive.engine)
    table = Table("service", "enabled", "every", "next run", "locked by", "last run", "result")
    for r in rows:
        table.add_row(
            r.name,
            "yes" if r.enabled else "no",
            f"{r.interval_seconds} s",
            _when(r.next_run_at),
            r.locked_by if r.locked else "-",
            _when(r.last_run_at),
            r.last_result[:80],
        )
    console.print(table)


@services_app.command("run")
def services_run(name: str) -> None:
    """Run a service now in this process (enabled or not), unless a node is running it."""
    from hounsfield.scheduled.scheduler import ensure_services, run_service

    with _archive() as archive:
        ensure_services(archive)
        result = run_service(archive, name, force=True)
    if result is None:
        console.print(f"[yellow]{name} is running on another node[/yellow]")
        raise typer.Exit(1)
    console.print(f"{name}: {result}")


def _configure(name: str, **values: Any) -> None:
    from hounsfield.scheduled import lock
    from hounsfield.scheduled.scheduler import ensure_services

    with _archive() as archive:
        ensure_services(archive)
        row = lock.configure(archive.engine, name, **values)
    console.print(
        f"{row.name}: {'enabled' if row.enabled else 'disabled'}, every {row.interval_seconds} s"
    )


@services_app.command("enable")
def services_enable(
    name: str, every: Annotated[int | None, typer.Option(help="Interval, seconds.")] = None
) -> None:
    """Enable a service (it runs at the next scheduler pass)."""
    _configure(name, enabled=True, interval_seconds=every)


@services_app.command("disable")
def services_disable(name: str) -> None:
    """Disable a service."""
    _configure(name, enabled=False)


# -- alerts ---------------------------------------------------------------------------------


@alerts_app.command("list")
def alerts_list(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
) -> None:
    """The newest alerts: full disks, failed work items, lost reports, ..."""
    from hounsfield.alerts import list_alerts

    with _archive() as archive:
        rows = list_alerts(archive.engine, limit)
    table = Table("time", "level", "category", "source", "message")
    for a in rows:
        table.add_row(_when(a.created_at), a.level, a.category, a.source, a.message)
    console.print(table)


SUBCOMMANDS: list[tuple[typer.Typer, str]] = [
    (alerts_app, "alerts"),
    (queue_app, "queue"),
    (filesystem_app, "filesystem"),
    (rule_app, "rule"),
    (services_app, "services"),
]
