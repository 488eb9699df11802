"""`hounsfield send`, `find`, `get` and `move`: a client of a cluster's nodes, failing over."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hounsfield.cli.output import (
    JsonOpt,
    archive,
    console,
    err_console,
    fail,
    print_json,
    rows_table,
    settings,
)
from hounsfield.errors import ArchiveError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from hounsfield.client import Client, RetrieveReport

DEFAULT_CALLED = "HOUNSFIELD"
ToOpt = Annotated[
    str,
    typer.Option(
        "--to",
        metavar="NODES",
        help="host:port of each node, comma-separated, or the AE title of a known device "
        "(its address and alternates).",
    ),
]
AetOpt = Annotated[str, typer.Option("--aet", help="Our (calling) AE title.")]
CalledOpt = Annotated[
    str | None,
    typer.Option("--called", help=f"Called AE title (default: the device's, or {DEFAULT_CALLED})."),
]
ConnectOpt = Annotated[
    float, typer.Option("--connect-timeout", help="Seconds to wait for a node's TCP connect.")
]
ReceiveOpt = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for each DIMSE response.")
]
KeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--key", "-k", metavar="TAG=VALUE", help="Matching key (Keyword or gggg,eeee); repeat."
    ),
]
LevelOpt = Annotated[str, typer.Option("--level", help="STUDY, SERIES or IMAGE.")]


def _client(
    to: str, aet: str, called: str | None, connect_timeout: float, receive_timeout: float
) -> Client:
    """A client of the nodes `to` names (addresses, or a known device's)."""
    from hounsfield.client import Client, parse_nodes

    try:
        nodes = [f"{h}:{p}" for h, p in parse_nodes(to)]
        title = called or DEFAULT_CALLED
    except ValueError:
        nodes, title = _device_nodes(to.strip())
        title = called or title
    try:
        return Client(
            nodes,
            called_ae=title,
            calling_ae=aet,
            connect_timeout=connect_timeout,
            receive_timeout=receive_timeout,
            settings=settings(),
        )
    except ValueError as exc:
        fail(str(exc))


def _device_nodes(ae_title: str) -> tuple[list[str], str]:
    """A known device's address and alternates, and its AE title."""
    from hounsfield.sites.devices import find_device

    with archive() as opened:
        found = find_device(opened, ae_title)
    if found is None:
        fail(f"{ae_title!r} is neither host:port nor the AE title of a known device")
    return [f"{found.host}:{found.port}", *found.alternates], found.ae_title


def _query(keys: list[str] | None) -> dict[str, str]:
    from hounsfield.client import parse_keys

    try:
        return parse_keys(keys or [])
    except ValueError as exc:
        fail(str(exc))


@contextmanager
def _failures() -> Iterator[None]:
    """A failure of every node (or a bad query) ends the command with exit code 1."""
    try:
        yield
    except ArchiveError as exc:
        fail(exc, 1)
    except ValueError as exc:
        fail(str(exc))


def send(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (recursive).")],
    to: ToOpt,
    aet: AetOpt = "HFCLIENT",
    called: CalledOpt = None,
    affinity: Annotated[
        bool, typer.Option("--affinity", help="Keep each study's instances on one node.")
    ] = False,
    associations: Annotated[
        int, typer.Option(min=1, max=16, help="Associations at once (with --affinity: studies).")
    ] = 1,
    connect_timeout: ConnectOpt = 2.0,
    receive_timeout: ReceiveOpt = 60.0,
) -> None:
    """C-STORE files to the nodes; a failing node's share goes on at the next one from its
    first unacknowledged instance. Exit 1 when any instance was not sent."""
    client = _client(to, aet, called, connect_timeout, receive_timeout)
    columns = (TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with _failures(), Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("sending", total=None)

        def sent(_item: object, _node: str | None) -> None:
            bar.advance(task)

        from hounsfield.client.files import walk

        listed = list(walk(paths))
        bar.update(task, total=len(listed))
        report = client.send(listed, affinity=affinity, associations=associations, on_sent=sent)
    for what, why in list(report.failed.items())[:20]:
        err_console.print(f"{what}: {why}", style="red", markup=False, highlight=False)
    nodes = ", ".join(f"{node} {count}" for node, count in sorted(report.per_node().items()))
    console.print(
        f"sent {len(report.sent)}, failed {len(report.failed)}, failovers {report.failovers}"
        + (f" ({nodes})" if nodes else "")
    )
    if report.failed:
        raise typer.Exit(1)


def find(
    to: ToOpt,
    key: KeyOpt = None,
    level: LevelOpt = "STUDY",
    aet: AetOpt = "HFCLIENT",
    called: CalledOpt = None,
    connect_timeout: ConnectOpt = 2.0,
    receive_timeout: ReceiveOpt = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """C-FIND at the first node that answers; print the matches."""
    from hounsfield.client.query import identifier

    client = _client(to, aet, called, connect_timeout, receive_timeout)
    with _failures():
        ask = identifier(_query(key), level, returned=True)
        found = client.find(ask, level)
    keywords = [e.keyword for e in ask if e.keyword not in ("QueryRetrieveLevel", "")]
    rows = [{k: _text(ds, k) for k in keywords} for ds in found]
    if as_json:
        print_json(rows)
        return
    rows_table(keywords, ([row[k] for k in keywords] for row in rows))
    if client.failovers:
        err_console.print(f"failovers: {client.failovers}")


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        return str(value)
    return "\\".join(str(v) for v in value)


def get(
    to: ToOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for the retrieved files.")],
    key: KeyOpt = None,
    level: LevelOpt = "STUDY",
    aet: AetOpt = "HFCLIENT",
    called: CalledOpt = None,
    connect_timeout: ConnectOpt = 2.0,
    receive_timeout: ReceiveOpt = 60.0,
) -> None:
    """C-GET what the keys match into a folder (one file per SOP Instance UID)."""
    client = _client(to, aet, called, connect_timeout, receive_timeout)
    query = _query(key)
    with _failures():
        report = client.get(query, out, level)
    _retrieved("C-GET", report, f"{len(report.files)} files in {out}")


def move(
    to: ToOpt,
    dest: Annotated[str, typer.Option("--dest", help="AE title to move to.")],
    key: KeyOpt = None,
    level: LevelOpt = "STUDY",
    aet: AetOpt = "HFCLIENT",
    called: CalledOpt = None,
    connect_timeout: ConnectOpt = 2.0,
    receive_timeout: ReceiveOpt = 60.0,
) -> None:
    """C-MOVE what the keys match to another AE title."""
    client = _client(to, aet, called, connect_timeout, receive_timeout)
    query = _query(key)
    with _failures():
        report = client.move(query, dest, level)
    _retrieved("C-MOVE", report, f"to {dest}")


def _retrieved(doing: str, report: RetrieveReport, where: str) -> None:
    """Print how a retrieve ended; exit 1 unless every sub-operation succeeded."""
    r = report.result
    console.print(
        f"{doing} at {report.node}: completed {r.completed}, failed {r.failed}, "
        f"warning {r.warning}, status 0x{r.status:04X}, failovers {report.failovers}, {where}"
    )
    if not report.ok:
        raise typer.Exit(1)
