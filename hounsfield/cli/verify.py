"""`hounsfield verify`: re-read stored files, check them against the index, repair from copies."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hounsfield.cli.output import JsonOpt, archive, console, print_json, rows_table


def verify(
    study: Annotated[str | None, typer.Option(help="Only this Study Instance UID.")] = None,
    filesystem: Annotated[
        Path | None, typer.Option(help="Only the files on this filesystem.")
    ] = None,
    partition: Annotated[str | None, typer.Option(help="The study's partition AE title.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the size and SHA-256 of stored files (every file, or a study's, or a filesystem's)
    and repair bad or missing ones from a good copy; exit code 1 if any stays unrepaired."""
    from hounsfield.lifecycle.verify import verify_storage

    columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with archive() as opened, Progress(*columns, console=console, disable=as_json) as bar:
        task = bar.add_task("verifying", total=None)
        report = verify_storage(
            opened,
            study_uid=study,
            filesystem_path=filesystem,
            partition=partition,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        print_json([asdict(report)])
    else:
        rows_table(
            ("checked", "good", "bad", "missing", "repaired", "unrepairable"),
            [
                [
                    str(n)
                    for n in (
                        report.checked,
                        report.good,
                        report.bad,
                        report.missing,
                        report.repaired,
                        report.unrepairable,
                    )
                ]
            ],
        )
        for line in report.problems:
            console.print(f"  {line}", markup=False, highlight=False)
        for root in report.unreachable_filesystems:
            console.print(f"  {root}: unreachable, not checked", markup=False, highlight=False)
    if report.unrepairable or report.unreachable:
        raise typer.Exit(1)
