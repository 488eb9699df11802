"""`hounsfield device` and `hounsfield echo`: the remote DICOM devices and C-ECHO to them."""

from __future__ import annotations

from typing import Annotated

import typer

from hounsfield.archive.context import Archive
from hounsfield.cli.output import JsonOpt, archive, console, fail, print_json, rows_table
from hounsfield.errors import ArchiveError
from hounsfield.sites.devices import Device, add_device, list_devices, remove_device

app = typer.Typer(help="Remote DICOM devices.", no_args_is_help=True)
TimeoutOpt = Annotated[
    float | None, typer.Option(help="Seconds to wait for the peer (default: the node's).")
]


@app.command("add")
def device_add(
    ae_title: str,
    host: str,
    port: int,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    protocol: Annotated[
        str, typer.Option(help="How to forward to it: dimse (C-STORE) or dicomweb (STOW-RS).")
    ] = "dimse",
    url: Annotated[str, typer.Option(help="DICOMweb base URL (with --protocol dicomweb).")] = "",
    associations: Annotated[
        int, typer.Option(help="Associations (or STOW requests) at once when forwarding.")
    ] = 1,
    bandwidth: Annotated[
        int | None, typer.Option("--bandwidth-kbps", help="Forwarding rate cap, kbit/s.")
    ] = None,
    commitment: Annotated[
        bool, typer.Option(help="Request storage commitment after each forwarded study.")
    ] = False,
    alternate: Annotated[
        list[str] | None,
        typer.Option(
            "--alternate",
            metavar="HOST:PORT",
            help="Another address of the same AE (a cluster node), tried in turn when an "
            "association cannot be opened; repeat for each.",
        ),
    ] = None,
    tls: Annotated[
        bool, typer.Option(help="Associate over TLS (the node's CA checks the device).")
    ] = False,
    echo_it: Annotated[bool, typer.Option("--echo", help="C-ECHO the device once added.")] = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Add a device, or update the one with this AE title."""
    with archive() as opened:
        found = Device(
            ae_title,
            host,
            port,
            description,
            protocol,
            url,
            associations,
            bandwidth,
            commitment,
            tuple(alternate or ()),
            tls,
        )
        new = add_device(opened, found)
        also = f" (also {', '.join(found.alternates)})" if found.alternates else ""
        over = " over TLS" if tls else ""
        console.print(f"{'added' if new else 'updated'} {ae_title} at {host}:{port}{also}{over}")
        if echo_it:
            _echo(opened, ae_title, timeout)


@app.command("list")
def device_list(as_json: JsonOpt = False) -> None:
    """List the known devices."""
    with archive() as opened:
        devices = list_devices(opened)
    if as_json:
        print_json(devices)
        return
    rows_table(
        ("AE title", "host", "port", "alternates", "forwarding", "description"),
        (
            (d.ae_title, d.host, str(d.port), " ".join(d.alternates), _forwarding(d), d.description)
            for d in devices
        ),
    )


def _forwarding(d: Device) -> str:
    """How forwards to the device go, in a few words."""
    parts = [d.url if d.protocol == "dicomweb" else "C-STORE"]
    if d.associations > 1:
        parts.append(f"{d.associations} at once")
    if d.bandwidth_kbps:
        parts.append(f"max {d.bandwidth_kbps} kbit/s")
    if d.commitment:
        parts.append("commitment")
    if d.tls:
        parts.append("TLS")
    return " ".join(parts)


@app.command("remove")
def device_remove(ae_title: str) -> None:
    """Remove a device."""
    with archive(code=1) as opened:
        remove_device(opened, ae_title)
    console.print(f"removed {ae_title}")


def echo(
    ae_title: Annotated[str, typer.Argument(help="Device AE title.")], timeout: TimeoutOpt = None
) -> None:
    """Send a C-ECHO to a known device and report how long it took."""
    with archive() as opened:
        _echo(opened, ae_title, timeout)


def _echo(opened: Archive, ae_title: str, timeout: float | None) -> None:
    """C-ECHO one device; on failure print the reason in red and exit 1."""
    from hounsfield.sites.peers import echo as echo_device  # pynetdicom only when echoing

    try:
        result = echo_device(opened, ae_title, timeout=timeout)
    except ArchiveError as exc:
        fail(exc, 1)
    where = f"{result.ae_title} at {result.host}:{result.port}"
    outcome = _outcome(result.status)
    if outcome != "success":
        fail(f"C-ECHO to {where}: {outcome}", 1)
    console.print(f"C-ECHO to {where}: success in {result.seconds * 1000:.0f} ms")


def _outcome(status: int) -> str:
    """'success' for a 0x0000 status, otherwise the status in hex."""
    return "success" if status == 0 else f"status 0x{status:04X}"
