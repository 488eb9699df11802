"""`hounsfield audit`: the audit trail (who did what to which patient's images, and when)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from hounsfield.cli.output import JsonOpt, archive, fail, print_json, rows_table, when

app = typer.Typer(
    help="The audit trail: accesses, changes and security events.", no_args_is_help=True
)


def _moment(value: str | None) -> datetime | None:
    """A time given as ISO 8601 (UTC when no zone), or as hours ago: '24h', or days: '7d'."""
    if not value:
        return None
    if value[-1:] in ("h", "d") and value[:-1].replace(".", "", 1).isdigit():
        amount = float(value[:-1])
        return datetime.now(UTC) - timedelta(hours=amount if value[-1] == "h" else amount * 24)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"not a time: {value!r} (use 2026-11-30, 2026-11-30T08:00, 24h or 7d)")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command("list")
def audit_list(
    since: Annotated[str | None, typer.Option(help="From: ISO time, or '24h', '7d' ago.")] = None,
    until: Annotated[str | None, typer.Option(help="Before: ISO time, or '1h' ago.")] = None,
    event: Annotated[str | None, typer.Option(help="One kind: store, query, retrieve, ...")] = None,
    user: Annotated[str | None, typer.Option(help="A user name or calling AE title.")] = None,
    host: Annotated[str | None, typer.Option(help="A caller's address.")] = None,
    patient: Annotated[str | None, typer.Option(help="A Patient ID.")] = None,
    study: Annotated[str | None, typer.Option(help="A Study Instance UID.")] = None,
    partition: Annotated[str | None, typer.Option(help="A partition's AE title.")] = None,
    failures: Annotated[bool, typer.Option("--failures", help="Only what failed.")] = False,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Audit records, newest first (this reading is recorded too)."""
    from hounsfield.audit.events import KINDS
    from hounsfield.audit.records import AuditFilter, list_records

    if event and event not in KINDS:
        fail(f"unknown event {event!r}; one of: {', '.join(KINDS)}")
    wanted = AuditFilter(
        since=_moment(since),
        until=_moment(until),
        event=event or "",
        user=user or "",
        host=host or "",
        patient_id=patient or "",
        study_uid=study or "",
        partition=partition or "",
        failures=failures,
        limit=limit,
    )
    with archive() as opened:
        rows = list_records(opened.engine, wanted)
    if as_json:
        print_json([r.as_dict() for r in rows])
        return
    rows_table(
        ("time", "event", "outcome", "who", "from", "partition", "patient", "study", "n", "detail"),
        (
            (
                when(r.created_at),
                r.event,
                r.outcome_text,
                r.user or r.ae_title,
                r.host,
                r.partition,
                r.patient_id,
                r.study_uid,
                str(r.count),
                r.detail,
            )
            for r in rows
        ),
    )
