"""`hounsfield compress`: compress a study's stored objects now, verified, in place."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from hounsfield.cli.output import JsonOpt, archive, console, print_json, rows_table


def compress(
    study: Annotated[str, typer.Argument(help="Study Instance UID.")],
    syntax: Annotated[
        str,
        typer.Option(
            help="jpeg2000-lossless, jpeg-ls-lossless, htj2k-lossless, htj2k-lossless-rpcl "
            "or jpeg2000 (lossy, with --ratio)."
        ),
    ] = "htj2k-lossless-rpcl",
    ratio: Annotated[float | None, typer.Option(help="Lossy compression ratio.")] = None,
    partition: Annotated[str | None, typer.Option(help="The study's partition AE title.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compress every object of a study with `syntax`; each is decoded back and compared
    before it replaces the original (objects already in `syntax` are left)."""
    from hounsfield.lifecycle.compress import compress_study_uid

    with archive() as opened:
        report = compress_study_uid(opened, study, syntax, partition=partition, ratio=ratio)
    if as_json:
        print_json([asdict(report)])
        return
    counts = (report.compressed, report.skipped, report.bytes_before, report.bytes_after)
    rows_table(("compressed", "left", "bytes before", "bytes after"), [[str(n) for n in counts]])
    for reason, count in sorted(report.reasons.items()):
        console.print(f"  {count}x {reason}", markup=False, highlight=False)
