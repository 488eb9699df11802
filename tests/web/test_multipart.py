"""The streaming multipart reader and writer agree, whatever the chunk boundaries."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hounsfield.web.dicomweb import multipart, ranged


def _read(body: bytes, boundary: str, size: int) -> list[multipart.ReceivedPart]:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), size):
            yield body[i : i + size]

    async def collect() -> list[multipart.ReceivedPart]:
        return [p async for p in multipart.read(chunks(), boundary)]

    return asyncio.run(collect())


@pytest.mark.parametrize("size", [1, 7, 64, 1 << 20])
def test_round_trip(size: int) -> None:
    bodies = [os.urandom(1000), b"", b"\r\n--not-the-boundary\r\n", os.urandom(5000)]
    parts = [multipart.Part({"Content-Type": "application/dicom"}, [b]) for b in bodies]
    wire = b"preamble" + b"\r\n" + b"".join(multipart.write(parts, "xyz"))
    got = _read(wire, "xyz", size)
    assert [p.body for p in got] == bodies
    assert all(p.headers["content-type"] == "application/dicom" for p in got)


def test_malformed() -> None:
    for body in (
        b"no boundary here",
        b"--xyz\r\nBad header\r\n\r\nabc\r\n--xyz--",
        b"--xyz\r\n\r\nabc",
    ):
        with pytest.raises(multipart.MalformedMultipart):
            _read(body, "xyz", 5)


def test_known_length_pieces_make_the_written_body() -> None:
    """WADO-RS announces the length of stored objects from `ranged.multipart_pieces`: its
    pieces must make the very body `write` makes."""
    bodies = [os.urandom(1000), b"", os.urandom(70)]
    headers = {"Content-Type": "application/dicom"}
    for chosen in (bodies, bodies[:1]):
        parts = [multipart.Part(headers, [b]) for b in chosen]
        pieces = ranged.multipart_pieces([(headers, [ranged.given(b)]) for b in chosen], "xyz")
        total = sum(p.length for p in pieces)
        written = b"".join(multipart.write(parts, "xyz"))
        assert b"".join(ranged.slices(pieces, 0, total)) == written and total == len(written)


def test_a_file_body_is_sent_as_read_and_a_short_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "object.dcm"
    path.write_bytes(os.urandom(multipart.CHUNK + 10))
    chunks = list(multipart.file_chunks(path, 0, multipart.CHUNK + 10))
    assert [len(c) for c in chunks] == [multipart.CHUNK, 10]
    assert list(multipart.file_chunks(path, 5, 3)) == [path.read_bytes()[5:8]]
    with pytest.raises(multipart.ShortFile):
        list(multipart.file_chunks(path, 0, multipart.CHUNK + 11))
