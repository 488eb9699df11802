"""`hounsfield forward` and `hounsfield forwards`: send studies to a device, and follow them."""

from __future__ import annotations

from typing import Annotated

import typer

from hounsfield.cli.output import JsonOpt, archive, console, print_json, rows_table, when
from hounsfield.sites.forward_state import STATES

HEADERS = ("#", "partition", "study", "to", "state", "sent", "committed", "tries", "when", "error")
app = typer.Typer(help="Forwards: their state per study and destination.", no_args_is_help=True)


def forward(
    device: Annotated[str, typer.Argument(help="Destination device AE title.")],
    study: Annotated[str | None, typer.Option(help="Study Instance UID.")] = None,
    series: Annotated[str | None, typer.Option(help="Only this series of the study.")] = None,
    patient: Annotated[str | None, typer.Option(help="Every study of this Patient ID.")] = None,
    date_from: Annotated[
        str | None, typer.Option("--from", help="Studies dated from (YYYYMMDD).")
    ] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Studies dated up to.")] = None,
    partition: Annotated[str | None, typer.Option(help="Partition AE title.")] = None,
) -> None:
    """Queue forwards of a study, a patient's studies or a date range to a device."""
    from hounsfield.sites.forward import forward_studies

    with archive(code=1) as opened:
        uids = forward_studies(
            opened,
            device,
            study=study,
            series=series,
            patient_id=patient,
            date_from=date_from,
            date_to=date_to,
            partition=partition,
        )
    console.print(f"queued {len(uids)} {'study' if len(uids) == 1 else 'studies'} to {device}")


@app.command("list")
def forwards_list(
    destination: Annotated[str | None, typer.Option(help="Only this destination.")] = None,
    state: Annotated[
        str | None, typer.Option(help=f"Only this state: {', '.join(STATES)}.")
    ] = None,
    study: Annotated[str | None, typer.Option(help="Only this study.")] = None,
    limit: int = 200,
    as_json: JsonOpt = False,
) -> None:
    """Each study at each destination: pending, sending, sent, committed or failed."""
    from hounsfield.sites.forward_state import list_forwards

    with archive() as opened:
        rows = list_forwards(
            opened.engine, destination=destination, state=state, study=study, limit=limit
        )
    if as_json:
        print_json(rows)
        return
    rows_table(
        (
            "#",
            "partition",
            "study",
            "to",
            "state",
            "sent",
            "committed",
            "tries",
            "updated",
            "error",
        ),
        (
            (
                str(f.pk),
                f.partition,
                f.study + (f" / {f.series}" if f.series else ""),
                f.destination,
                f.state,
                f"{f.sent}/{f.instances}",
                str(f.committed),
                str(f.attempts),
                when(f.updated_at),
                f.last_error,
            )
            for f in rows
        ),
    )


@app.command("retry")
def forwards_retry(
    destination: Annotated[str | None, typer.Option(help="Only this destination's.")] = None,
    pk: Annotated[int | None, typer.Option("--id", help="Only this forward (#).")] = None,
) -> None:
    """Queue the failed (dead-lettered) forwards again."""
    from hounsfield.sites.forward import retry_failed

    with archive(code=1) as opened:
        again = retry_failed(opened, destination=destination, pk=pk)
    console.print(f"queued {len(again)} failed forward{'s' if len(again) != 1 else ''} again")
