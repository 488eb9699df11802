"""`hounsfield status`: what the archive holds and how full its filesystems are."""

from __future__ import annotations

from typing import Annotated

import typer

from hounsfield.archive.status import status as archive_status
from hounsfield.cli.output import (
    archive,
    console,
    human_size,
    print_json_object,
    rows_table,
)


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Counts of patients, studies, series, instances; bytes stored; free disk."""
    with archive() as opened:
        s = archive_status(opened)
    if as_json:
        print_json_object(s)
        return
    console.print(
        f"patients {s.patients}  studies {s.studies}  series {s.series}  "
        f"instances {s.instances}  stored {human_size(s.stored_bytes)}"
    )
    rows_table(
        ("filesystem", "tier", "stored", "free", "capacity", "used", "low/high"),
        (
            (
                fs.path,
                str(fs.tier),
                human_size(fs.stored_bytes),
                human_size(fs.free_bytes) if fs.free_bytes is not None else "unreachable",
                human_size(fs.capacity_bytes) if fs.capacity_bytes else "-",
                f"{fs.used_percent:.1f}%" if fs.used_percent is not None else "-",
                f"{fs.low_watermark}/{fs.high_watermark}%",
            )
            for fs in s.filesystems
        ),
    )
