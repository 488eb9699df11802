"""`hounsfield filesystem`: storage filesystems, their tiers and watermarks."""

from __future__ import annotations

import re
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from hounsfield.cli.output import JsonOpt, archive, console, print_json, rows_table


class MirrorModeName(StrEnum):
    """How a mirror gets its copies."""

    sync = "sync"
    async_ = "async"


app = typer.Typer(help="Storage filesystems, tiers and watermarks.", no_args_is_help=True)
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}

TierOpt = Annotated[int | None, typer.Option(help="Tier 1 (fastest) to 3.")]
CapOpt = Annotated[str | None, typer.Option(help="Capacity, e.g. 2TB; 'disk' for the disk's.")]
LowOpt = Annotated[int | None, typer.Option("--low", help="Low watermark, percent.")]
HighOpt = Annotated[int | None, typer.Option("--high", help="High watermark, percent.")]
RoOpt = Annotated[bool | None, typer.Option("--read-only/--writable")]
WoOpt = Annotated[bool | None, typer.Option("--write-only/--readable")]
EnOpt = Annotated[bool | None, typer.Option("--enabled/--disabled")]
MirrorOfOpt = Annotated[
    Path | None, typer.Option(help="Make PATH the mirror of this registered filesystem.")
]
ModeOpt = Annotated[
    MirrorModeName | None,
    typer.Option(help="sync: copy before acknowledging (default); async: soon after."),
]


def parse_size(text: str | None) -> int | None:
    """A size such as 500GB or 2TiB in bytes."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in _UNITS:
        raise typer.BadParameter(f"cannot read size {text!r}; write e.g. 500GB or 2TiB")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _fs_options(
    tier: int | None,
    capacity: str | None,
    low: int | None,
    high: int | None,
    read_only: bool | None,
    write_only: bool | None,
    enabled: bool | None,
) -> dict[str, Any]:
    values = {
        "tier": tier,
        "low_watermark": low,
        "high_watermark": high,
        "read_only": read_only,
        "write_only": write_only,
        "enabled": enabled,
    }
    if capacity is not None:
        values["capacity_bytes"] = None if capacity.lower() == "disk" else parse_size(capacity)
    return {k: v for k, v in values.items() if v is not None or k == "capacity_bytes"}


@app.command("add")
def filesystem_add(
    path: Path,
    tier: TierOpt = 1,
    capacity: CapOpt = None,
    low: LowOpt = None,
    high: HighOpt = None,
    read_only: RoOpt = None,
    write_only: WoOpt = None,
    enabled: EnOpt = None,
    mirror_of: MirrorOfOpt = None,
    mirror_mode: ModeOpt = None,
) -> None:
    """Add a filesystem (or update the one at PATH); with --mirror-of, as another's mirror."""
    from hounsfield.storage.tiers import add_filesystem

    values = _fs_options(tier, capacity, low, high, read_only, write_only, enabled)
    values["mirror_of"] = mirror_of
    values["mirror_mode"] = mirror_mode.value if mirror_mode else None
    with archive() as opened:
        new = add_filesystem(opened.engine, path, **values)
    console.print(f"{'added' if new else 'updated'} {path.resolve()}", markup=False)


@app.command("set")
def filesystem_set(
    path: Path,
    tier: TierOpt = None,
    capacity: CapOpt = None,
    low: LowOpt = None,
    high: HighOpt = None,
    read_only: RoOpt = None,
    write_only: WoOpt = None,
    enabled: EnOpt = None,
    mirror_mode: ModeOpt = None,
) -> None:
    """Change a filesystem's settings (of a mirror, also its mode)."""
    from hounsfield.storage.tiers import set_filesystem

    values = _fs_options(tier, capacity, low, high, read_only, write_only, enabled)
    values["mirror_mode"] = mirror_mode.value if mirror_mode else None
    if capacity is None:
        values.pop("capacity_bytes", None)
    with archive() as opened:
        set_filesystem(opened.engine, path, **values)
    console.print(f"updated {path.resolve()}", markup=False)


@app.command("remove")
def filesystem_remove(path: Path) -> None:
    """Forget an empty filesystem."""
    from hounsfield.storage.tiers import remove_filesystem

    with archive() as opened:
        remove_filesystem(opened.engine, path)
    console.print(f"removed {path.resolve()}", markup=False)


@app.command("list")
def filesystem_list(as_json: JsonOpt = False) -> None:
    """Filesystems by tier with their watermarks and usage."""
    from hounsfield.storage.tiers import list_filesystems

    with archive() as opened:
        usages = list_filesystems(opened.engine)
    if as_json:
        print_json(asdict(u) | {"percent": u.percent} for u in usages)
        return
    rows_table(
        ("path", "tier", "flags", "mirror of", "low", "high", "used", "capacity", "%"),
        (
            (
                u.path,
                str(u.tier),
                ",".join(
                    flag
                    for flag, on in (
                        ("disabled", not u.enabled),
                        ("ro", u.read_only),
                        ("wo", u.write_only),
                    )
                    if on
                )
                or "-",
                f"{u.mirror_of} ({u.mirror_mode})" if u.is_mirror else "-",
                str(u.low_watermark),
                str(u.high_watermark),
                str(u.used_bytes),
                str(u.total_bytes) if u.total_bytes else "unreachable",
                f"{u.percent:.1f}" if u.percent is not None else "-",
            )
            for u in usages
        ),
    )
