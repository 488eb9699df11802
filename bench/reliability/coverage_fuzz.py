"""Coverage-guided fuzzing (atheris, libFuzzer) of the parsers, one target to a process:
`python -m bench.reliability.coverage_fuzz TARGET SEEDS_DIR -max_total_time=60 -timeout=5`.

A target takes bytes and must return or raise the archive's own refusal; anything else is a
crash that libFuzzer reports with the input that caused it. Needs `pip install atheris`."""

from __future__ import annotations

import asyncio
import logging
import sys
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.4.50",
    "1.2.3",
)
BOUNDARY = "f0e1d2c3b4a5"
LEVELS = ("STUDY", "SERIES", "IMAGE")


def seeds(target: str) -> list[bytes]:
    """Starting inputs for a target, from the real corpus files."""
    from bench.reliability.mutate import corpus

    sources = corpus()[:60]
    if target in ("scan", "parse"):
        return [bytes([n % 6]) + s.dataset[:4096] for n, s in enumerate(sources)]
    if target == "part10":
        return [s.meta[132:] + s.dataset[:2048] for s in sources]
    if target == "multipart":
        return [
            b"\x05\x40--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n--%s--\r\n"
            % (BOUNDARY.encode(), s.dataset[:512], BOUNDARY.encode())
            for s in sources[:10]
        ]
    return [b"\x00PatientName\x00Doe*\x00limit\x0010\x00StudyDate\x0020200101-"]


def _targets() -> dict[str, Callable[[bytes], None]]:
    """The fuzz targets, with the archive's modules imported under instrumentation."""
    import atheris

    with atheris.instrument_imports(include=["hounsfield", "pydicom"]):
        from starlette.datastructures import QueryParams

        from hounsfield.catalog.parse import (
            INDEX_KEYWORDS,
            INDEX_TAGS,
            parse_header,
            required_uids,
            text,
        )
        from hounsfield.catalog.scan import scan
        from hounsfield.errors import ArchiveError, InvalidDataset
        from hounsfield.storage.filemeta import split_part10
        from hounsfield.web.dicomweb import multipart
        from hounsfield.web.dicomweb.qido import identifier

    def scan_target(data: bytes) -> None:
        if data:
            scan(data[1:], bool(data[0] & 1), bool(data[0] & 2), INDEX_TAGS)

    def parse_target(data: bytes) -> None:
        if not data:
            return
        try:
            parsed = parse_header(data[1:], TRANSFER_SYNTAXES[data[0] % len(TRANSFER_SYNTAXES)])
            required_uids(parsed)
        except InvalidDataset:
            return
        for keyword in INDEX_KEYWORDS:
            if "\0" in text(parsed.dataset, keyword):
                raise AssertionError(f"NUL in index text of {keyword}")

    def part10_target(data: bytes) -> None:
        try:
            meta, _ = split_part10(b"\0" * 128 + b"DICM" + data)
        except InvalidDataset:
            return
        str(meta.TransferSyntaxUID)

    def multipart_target(data: bytes) -> None:
        if len(data) < 2:
            return
        step = 1 + data[0] * 4

        async def stream() -> AsyncIterator[bytes]:
            for at in range(2, len(data), step):
                yield data[at : at + step]

        async def collect() -> None:
            async for _ in multipart.read(stream(), BOUNDARY):
                pass

        try:
            asyncio.run(collect())
            multipart.boundary_of(data.decode("latin-1"))
        except multipart.MalformedMultipart:
            return

    def qido_target(data: bytes) -> None:
        if not data:
            return
        words = data[1:].decode("utf-8", "replace").split("\0")
        params = list(zip(words[::2], words[1::2], strict=False))
        try:
            identifier(LEVELS[data[0] % 3], QueryParams(params), {})  # type: ignore[arg-type]
        except ArchiveError as exc:
            if exc.http_status != 400:
                raise

    return {
        "scan": scan_target,
        "parse": parse_target,
        "part10": part10_target,
        "multipart": multipart_target,
        "qido": qido_target,
    }


def main() -> None:
    """Fuzz one target: argv is TARGET, then libFuzzer's own arguments (a corpus folder,
    -max_total_time, -timeout, -seed...)."""
    import atheris

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    name = sys.argv[1]
    target: Any = _targets()[name]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


def write_seeds(target: str, folder: Path) -> Path:
    """Write a target's seeds into `folder` (libFuzzer adds what it finds there)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, seed in enumerate(seeds(target)):
        (folder / f"seed-{n:03d}").write_bytes(seed)
    return folder


if __name__ == "__main__":
    main()
