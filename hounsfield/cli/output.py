"""Shared CLI plumbing: settings, the archive opener, red errors, tables and JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from hounsfield.archive.context import Archive, open_archive
from hounsfield.errors import ArchiveError
from hounsfield.settings import Settings

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
_state: dict[str, Settings] = {}
# Piped output is as wide as the table needs: full names, never an ellipsis.
_PIPE_WIDTH = 100_000

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON array of objects.")]


def use_settings(settings: Settings) -> None:
    """Remember the settings the `main` callback loaded."""
    _state["settings"] = settings


def settings() -> Settings:
    """The settings of this invocation."""
    return _state["settings"]


def fail(error: ArchiveError | str, code: int = 2) -> NoReturn:
    """Print an error in red on stderr and exit with `code`."""
    message = error.message if isinstance(error, ArchiveError) else error
    err_console.print(message, style="red", markup=False, highlight=False)
    raise typer.Exit(code)


def open_or_exit() -> Archive:
    """Open the archive, or exit 2 with the reason (e.g. the schema needs an upgrade)."""
    try:
        return open_archive(settings())
    except ArchiveError as exc:
        fail(exc)


@contextmanager
def archive(code: int = 2) -> Iterator[Archive]:
    """The open archive for one command; an ArchiveError inside exits with `code`."""
    opened = open_or_exit()
    try:
        yield opened
    except ArchiveError as exc:
        fail(exc, code)
    finally:
        opened.close()


def table(*headers: str) -> Table:
    """A table whose cells wrap rather than cut when a terminal is too narrow."""
    return Table(*(Column(h, overflow="fold") for h in headers))


def show(rendered: Table) -> None:
    """Print a table: fitted to a terminal, at its natural width when piped."""
    if console.is_terminal:
        console.print(rendered)
    else:
        Console(width=_PIPE_WIDTH, soft_wrap=True).print(rendered)


def rows_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Build and print a table in one go; cells are plain text, never markup."""
    out = table(*headers)
    for row in rows:
        out.add_row(*(Text(cell) for cell in row))
    show(out)


def print_json(rows: Iterable[Any]) -> None:
    """Print a JSON array; dataclasses become objects, times ISO 8601 text."""
    typer.echo(json.dumps([jsonable(r) for r in rows], indent=2, default=_default))


def print_json_object(value: Any) -> None:
    """Print one JSON object (a dataclass, nested ones included), times ISO 8601 text."""
    typer.echo(json.dumps(jsonable(value), indent=2, default=_default))


def jsonable(value: Any) -> Any:
    """A dataclass as a dict; anything else as it is."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def when(value: datetime | None) -> str:
    """A timestamp as operators read it, or '-'."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def human_size(n: int) -> str:
    """A byte count in binary units, e.g. 1.5 GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{n} B"
