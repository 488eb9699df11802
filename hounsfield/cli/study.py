"""`hounsfield study`: where a study's files lie, and migrate, compress, reprocess or delete it."""

from __future__ import annotations

from typing import Annotated

import typer

from hounsfield.cli.output import JsonOpt, archive, console, print_json, rows_table

app = typer.Typer(
    help="One study: files, migrate, compress, reprocess, delete.", no_args_is_help=True
)

UidArg = Annotated[str, typer.Argument(help="Study Instance UID.")]
PartitionOpt = Annotated[str | None, typer.Option(help="Partition AE title (default: the node's).")]


def _queued(what: str, item: int | None) -> None:
    if item is None:
        console.print(f"{what} is already waiting in the queue")
    else:
        console.print(f"{what} queued as work item {item}")


@app.command("files")
def study_files_cmd(uid: UidArg, partition: PartitionOpt = None, as_json: JsonOpt = False) -> None:
    """Each file of the study: its filesystem, tier, transfer syntax, size, last verified."""
    from dataclasses import asdict

    from hounsfield.archive.study_files import study_files, study_pk

    with archive() as opened:
        files = study_files(opened, study_pk(opened, opened.resolve(partition), uid))
    if as_json:
        print_json({**asdict(f), "verified_at": str(f.verified_at or "")} for f in files)
        return
    rows_table(
        ("series", "instance", "filesystem", "tier", "syntax", "size", "path"),
        (
            (
                f.series_uid,
                f.sop_uid,
                f.filesystem + (" (mirror)" if f.mirror else ""),
                str(f.tier),
                f.transfer_syntax,
                str(f.size),
                f.path,
            )
            for f in files
        ),
    )


@app.command("migrate")
def study_migrate(
    uid: UidArg,
    partition: PartitionOpt = None,
    source: Annotated[
        str | None,
        typer.Option("--from", help="Filesystem path to move off (default: the one holding it)."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--to", help="Filesystem path to move to (default: next tier with room)."),
    ] = None,
) -> None:
    """Queue moving the study's files to another filesystem."""
    from hounsfield.archive.study_work import queue_migration

    with archive() as opened:
        _queued("migration", queue_migration(opened, partition, uid, source, target))


@app.command("compress")
def study_compress(
    uid: UidArg,
    partition: PartitionOpt = None,
    syntax: Annotated[str, typer.Option(help="Lossless syntax.")] = "htj2k-lossless-rpcl",
) -> None:
    """Queue compressing the study losslessly (`hounsfield compress` does it at once)."""
    from hounsfield.archive.study_work import queue_compression

    with archive() as opened:
        _queued(f"{syntax} compression", queue_compression(opened, partition, uid, syntax))


@app.command("reprocess")
def study_reprocess(uid: UidArg, partition: PartitionOpt = None) -> None:
    """Queue applying the rules again, forwarding and rebuilding the metadata of the study."""
    from hounsfield.archive.study_work import queue_reprocessing

    with archive() as opened:
        _queued("reprocessing", queue_reprocessing(opened, partition, uid))


@app.command("delete")
def study_delete(
    uid: UidArg,
    partition: PartitionOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete the study: its index rows at once, then its files."""
    from hounsfield.archive.delete import remove

    if not yes:
        typer.confirm(f"Delete study {uid} and all its files?", abort=True)
    with archive() as opened:
        count = remove(opened, uid, partition=partition)
    console.print(f"deleted study {uid} ({count} instances)")
