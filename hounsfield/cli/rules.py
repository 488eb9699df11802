"""`hounsfield rule`: add, list and remove server rules."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hounsfield.cli.output import JsonOpt, archive, console, print_json, rows_table

if TYPE_CHECKING:
    from hounsfield.rules.model import Rule

app = typer.Typer(help="Server rules.", no_args_is_help=True)


@app.command("add")
def rule_add(
    name: str,
    action: Annotated[str, typer.Option(help="tier1-retention, archive-copy, forward, ...")],
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
    to: Annotated[
        list[str] | None, typer.Option("--to", help="Forward: a destination device (repeat).")
    ] = None,
    trigger: Annotated[
        str | None, typer.Option(help="Forward on 'receipt' or once 'settled' (default).")
    ] = None,
    window: Annotated[
        str | None, typer.Option(help="Forward only inside this window, e.g. 22:00-06:00.")
    ] = None,
    require_committed: Annotated[
        list[str] | None,
        typer.Option(
            "--require-committed",
            help="Online retention: only once this destination committed the study (repeat).",
        ),
    ] = None,
) -> None:
    """Add a rule, or replace the one with this name."""
    from hounsfield.rules.model import Rule, parse_after, parse_condition
    from hounsfield.rules.saved import save_rule

    params: dict[str, Any] = {}
    if syntax:
        params["syntax"] = syntax
    if ratio:
        params["ratio"] = ratio
    if tier:
        params["tier"] = tier
    if to:
        params["destinations"] = list(to)
    if trigger:
        params["trigger"] = trigger
    if window:
        params["window"] = window
    if require_committed:
        params["require_committed"] = list(require_committed)
    with archive() as opened:
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
        new = save_rule(opened.engine, rule)
    console.print(f"{'added' if new else 'replaced'} rule {name}", markup=False)


def _rule_dict(rule: Rule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "action": rule.action,
        "conditions": [str(c) for c in rule.conditions],
        "match": rule.match,
        "after_seconds": rule.after_seconds,
        "time_from": rule.time_from,
        "exempt": rule.exempt,
        "is_default": rule.is_default,
        "enabled": rule.enabled,
        "partition": rule.partition,
        "params": rule.params,
    }


@app.command("list")
def rule_list(as_json: JsonOpt = False) -> None:
    """Rules in evaluation order."""
    from hounsfield.rules.model import format_after
    from hounsfield.rules.saved import list_rules

    with archive() as opened:
        rules = list_rules(opened.engine)
    if as_json:
        print_json(_rule_dict(r) for r in rules)
        return
    rows: list[tuple[str, ...]] = []
    for r in rules:
        joiner = " and " if r.match == "all" else " or "
        kind = "exempt" if r.exempt else "default" if r.is_default else "rule"
        rows.append(
            (
                r.name,
                r.action,
                joiner.join(str(c) for c in r.conditions) or "-",
                f"after {format_after(r.after_seconds)} from {r.time_from}",
                kind if r.enabled else f"{kind} (disabled)",
                r.partition or "all",
                json.dumps(r.params) if r.params else "-",
            )
        )
    rows_table(("name", "action", "conditions", "timing", "kind", "partition", "params"), rows)


@app.command("remove")
def rule_remove(name: str) -> None:
    """Remove a rule."""
    from hounsfield.rules.saved import remove_rule

    with archive() as opened:
        remove_rule(opened.engine, name)
    console.print(f"removed rule {name}", markup=False)
