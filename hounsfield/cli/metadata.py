"""`hounsfield metadata`: rebuild the per-study DICOMweb metadata documents."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hounsfield.cli.output import archive, console

app = typer.Typer(help="Per-study metadata documents (DICOMweb).", no_args_is_help=True)


@app.command("rebuild")
def metadata_rebuild(
    study: Annotated[str | None, typer.Option(help="Only this Study Instance UID.")] = None,
    partition: Annotated[str | None, typer.Option(help="Partition AE title.")] = None,
) -> None:
    """Rebuild the study metadata documents from the index."""
    from hounsfield.archive import metadata

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with archive() as opened:
        uids = [study] if study else metadata.studies(opened, partition=partition)
        with Progress(*columns, TimeRemainingColumn(), console=console) as progress:
            task = progress.add_task("rebuilding", total=len(uids))
            instances = 0
            for uid in uids:
                instances += metadata.rebuild(opened, uid, partition=partition)
                progress.advance(task)
    console.print(f"rebuilt {len(uids)} studies, {instances} instances")
