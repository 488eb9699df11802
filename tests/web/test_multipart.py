"""The streaming multipart reader and writer agree, whatever the chunk boundaries."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from hounsfield.web.dicomweb import multipart


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
