"""`hounsfield audit`: the audit trail (who did what to which patient's images, and when)."""

from __future__ import annotations

from typing import Annotated

import typer

from hounsfield.cli.output import JsonOpt, archive, fail, print_json, rows_table, when

app = typer.Typer(
    help="The audit trail: accesses, changes and security events.", no_args_is_help=True
)


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
    from hounsfield.audit.records import AuditFilter, list_records, moment
    from hounsfield.errors import InvalidRequest

    if event and event not in KINDS:
        fail(f"unknown event {event!r}; one of: {', '.join(KINDS)}")
    try:
        start, end = moment(since, "--since"), moment(until, "--until")
    except InvalidRequest as exc:
        fail(exc)
    wanted = AuditFilter(
        since=start,
        until=end,
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
