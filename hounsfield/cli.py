"""The `hounsfield` command: serve, db, device, import, status."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hounsfield.archive.context import Archive, open_archive
from hounsfield.archive.importer import Summary, expand, import_paths
from hounsfield.archive.status import status as archive_status
from hounsfield.cli_admin import SUBCOMMANDS as ADMIN_SUBCOMMANDS
from hounsfield.db import migrate
from hounsfield.db.engine import make_engine
from hounsfield.errors import ArchiveError
from hounsfield.settings import Settings, load_settings
from hounsfield.sites.devices import Device, add_device, list_devices, remove_device

app = typer.Typer(help="Hounsfield DICOM archive.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
device_app = typer.Typer(help="Remote DICOM devices.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(device_app, name="device")
for _sub, _name in ADMIN_SUBCOMMANDS:
    app.add_typer(_sub, name=_name)
console = Console(soft_wrap=True)
err_console = Console(stderr=True)
_state: dict[str, Settings] = {}


@app.callback()
def main(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML settings file.", exists=True)
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Load settings once for every command."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if verbose else logging.WARNING)
    _state["settings"] = load_settings(config)


def _settings() -> Settings:
    return _state["settings"]


def _archive() -> Archive:
    try:
        return open_archive(_settings())
    except ArchiveError as exc:
        err_console.print(exc.message, style="red", soft_wrap=True)
        raise typer.Exit(2) from exc


@app.command()
def serve() -> None:
    """Start the DICOM and HTTP servers (Ctrl-C or SIGTERM stops cleanly)."""
    from hounsfield.node import serve as run

    try:
        run(_settings())
    except ArchiveError as exc:
        err_console.print(exc.message, style="red", soft_wrap=True)
        raise typer.Exit(2) from exc


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema."""
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url)
    migrate.upgrade(engine)
    console.print(f"database at revision {migrate.current_revision(engine)}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the one this version needs."""
    engine = make_engine(_settings().sqlalchemy_url)
    console.print(f"current {migrate.current_revision(engine)}, head {migrate.head_revision()}")


@device_app.command("add")
def device_add(
    ae_title: str, host: str, port: int, description: str = typer.Option("", help="Free text.")
) -> None:
    """Add a device, or update the one with this AE title."""
    try:
        new = add_device(_archive(), Device(ae_title, host, port, description))
    except ArchiveError as exc:
        err_console.print(exc.message, style="red", soft_wrap=True)
        raise typer.Exit(2) from exc
    console.print(f"{'added' if new else 'updated'} {ae_title} at {host}:{port}")


@device_app.command("list")
def device_list() -> None:
    """List the known devices."""
    table = Table("AE title", "host", "port", "description")
    for d in list_devices(_archive()):
        table.add_row(d.ae_title, d.host, str(d.port), d.description)
    console.print(table)


@device_app.command("remove")
def device_remove(ae_title: str) -> None:
    """Remove a device."""
    try:
        remove_device(_archive(), ae_title)
    except ArchiveError as exc:
        err_console.print(exc.message, style="red", soft_wrap=True)
        raise typer.Exit(1) from exc
    console.print(f"removed {ae_title}")


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (recursive).")],
    partition: Annotated[str | None, typer.Option(help="Partition AE title.")] = None,
) -> None:
    """Import DICOM files through the same ingest path as C-STORE."""
    archive = _archive()
    files = expand(paths)
    summary = Summary()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("importing", total=len(files))
        for item in import_paths(archive, files, partition=partition):
            summary.add(item)
            progress.advance(task)
    console.print(
        f"stored {summary.stored}, duplicate {summary.duplicate}, rejected {len(summary.rejected)}"
    )
    for item in summary.rejected:
        console.print(f"  rejected {item.path}: {item.reason}")


@app.command()
def status() -> None:
    """Counts of patients, studies, series, instances; bytes stored; free disk."""
    s = archive_status(_archive())
    console.print(
        f"patients {s.patients}  studies {s.studies}  series {s.series}  "
        f"instances {s.instances}  stored {_size(s.stored_bytes)}"
    )
    table = Table("filesystem", "tier", "stored", "free", "capacity", "used", "low/high")
    for fs in s.filesystems:
        table.add_row(
            fs.path,
            str(fs.tier),
            _size(fs.stored_bytes),
            _size(fs.free_bytes) if fs.free_bytes is not None else "unreachable",
            _size(fs.capacity_bytes) if fs.capacity_bytes else "-",
            f"{fs.used_percent:.1f}%" if fs.used_percent is not None else "-",
            f"{fs.low_watermark}/{fs.high_watermark}%",
        )
    console.print(table)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{n} B"


metadata_app = typer.Typer(help="Per-study metadata documents (DICOMweb).", no_args_is_help=True)
app.add_typer(metadata_app, name="metadata")


@metadata_app.command("rebuild")
def metadata_rebuild(
    study: Annotated[str | None, typer.Option(help="Only this Study Instance UID.")] = None,
    partition: Annotated[str | None, typer.Option(help="Partition AE title.")] = None,
) -> None:
    """Rebuild the study metadata documents from the index."""
    from hounsfield.archive import metadata

    archive = _archive()
    try:
        uids = [study] if study else metadata.studies(archive, partition=partition)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeRemainingColumn(), console=console) as progress:
            task = progress.add_task("rebuilding", total=len(uids))
            instances = 0
            for uid in uids:
                instances += metadata.rebuild(archive, uid, partition=partition)
                progress.advance(task)
    except ArchiveError as exc:
        err_console.print(exc.message, style="red", soft_wrap=True)
        raise typer.Exit(2) from exc
    console.print(f"rebuilt {len(uids)} studies, {instances} instances")
