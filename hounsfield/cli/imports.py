"""`hounsfield import`: ingest files and folders through the C-STORE path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hounsfield.archive.importer import Summary, expand, import_paths
from hounsfield.cli.output import archive, console


def import_(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (recursive).")],
    partition: Annotated[str | None, typer.Option(help="Partition AE title.")] = None,
) -> None:
    """Import DICOM files through the same ingest path as C-STORE."""
    summary = Summary()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with archive() as opened:
        files = expand(paths)
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("importing", total=len(files))
            for item in import_paths(opened, files, partition=partition):
                summary.add(item)
                progress.advance(task)
    console.print(
        f"stored {summary.stored}, duplicate {summary.duplicate}, rejected {len(summary.rejected)}"
    )
    for item in summary.rejected:
        console.print(f"  rejected {item.path}: {item.reason}", markup=False, highlight=False)
