"""multipart/related bodies: a streaming writer for responses, a streaming reader for STOW-RS."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hounsfield.errors import ArchiveError

CHUNK = 1024 * 1024
MAX_HEADER = 16 * 1024


class MalformedMultipart(ArchiveError):
    """A multipart body that does not follow RFC 2046 framing."""

    http_status = 400


@dataclass(frozen=True)
class Part:
    """One part to send: its headers and its body as chunks."""

    headers: dict[str, str]
    body: Iterable[bytes]


def new_boundary() -> str:
    """A boundary string that cannot occur in DICOM data by chance."""
    return uuid.uuid4().hex


def content_type(part_type: str, boundary: str, transfer_syntax: str | None = None) -> str:
    """The Content-Type of a multipart/related response."""
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return value + (f"; transfer-syntax={transfer_syntax}" if transfer_syntax else "")


def opening(headers: dict[str, str], boundary: str) -> bytes:
    """What goes before a part's body: its delimiter and its headers."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"--{boundary}\r\n{head}\r\n".encode()


def closing(boundary: str) -> bytes:
    """The close delimiter that ends the body."""
    return f"--{boundary}--\r\n".encode()


def write(parts: Iterable[Part], boundary: str) -> Iterator[bytes]:
    """The multipart body: each part's framing, then its body's chunks as they are (a file's
    bytes are never joined or copied here; see `hounsfield.web.batched`)."""
    between = b""
    for part in parts:
        yield between + opening(part.headers, boundary)
        yield from part.body
        between = b"\r\n"
    yield between + closing(boundary)


class ShortFile(OSError):
    """A file ended before the bytes the index says it holds."""


def file_chunks(path: Path, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    """A file's bytes (or `length` of them from `start`) in chunks; a file shorter than that
    raises ShortFile (a body whose length was announced must not end early)."""
    with open(path, "rb", buffering=0) as fh:  # one read() per chunk: nothing to buffer
        if start:
            fh.seek(start)
        left = length
        while left is None or left > 0:
            chunk = fh.read(CHUNK if left is None else min(CHUNK, left))
            if not chunk:
                if left is not None:
                    raise ShortFile(f"{path} ended {left} bytes early")
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


def boundary_of(content_type_value: str) -> tuple[str, str]:
    """The (media type, boundary) of a multipart Content-Type header."""
    media = content_type_value.split(";", 1)[0].strip().lower()
    m = re.search(r'boundary\s*=\s*("([^"]+)"|[^;\s]+)', content_type_value, re.IGNORECASE)
    if not m:
        raise MalformedMultipart("the Content-Type has no boundary parameter")
    return media, m.group(2) or m.group(1)


def type_of(content_type_value: str) -> str:
    """The type parameter of a multipart/related Content-Type ('' when absent)."""
    m = re.search(r'type\s*=\s*("([^"]+)"|[^;\s]+)', content_type_value, re.IGNORECASE)
    return (m.group(2) or m.group(1)).lower() if m else ""


@dataclass(frozen=True)
class ReceivedPart:
    """One part of a received body."""

    headers: dict[str, str]
    body: bytes


async def read(stream: AsyncIterator[bytes], boundary: str) -> AsyncIterator[ReceivedPart]:
    """The parts of a multipart body as they arrive; only one part is held at a time."""
    first = b"--" + boundary.encode()
    delimiter = b"\r\n" + first
    buf = bytearray(b"\r\n")  # lets the first delimiter match like the others
    chunks = stream.__aiter__()
    done = False

    async def more() -> bool:
        nonlocal done
        if done:
            return False
        try:
            buf.extend(await chunks.__anext__())
        except StopAsyncIteration:
            done = True
            return False
        return True

    # Preamble up to the first delimiter.
    while (at := buf.find(delimiter)) < 0:
        del buf[: max(0, len(buf) - len(delimiter))]
        if not await more():
            raise MalformedMultipart("the body has no opening boundary")
    del buf[: at + len(delimiter)]
    while True:
        while len(buf) < 2:
            if not await more():
                raise MalformedMultipart("the body ends without a closing boundary")
        if buf[:2] == b"--":
            return
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if len(buf) > MAX_HEADER:
                raise MalformedMultipart("a part's headers are too long")
            if not await more():
                raise MalformedMultipart("a part's headers are not terminated")
        headers = _headers(bytes(buf[:end]))
        del buf[: end + 4]
        start = 0
        while (at := buf.find(delimiter, start)) < 0:
            start = max(0, len(buf) - len(delimiter) + 1)
            if not await more():
                raise MalformedMultipart("a part is not closed by a boundary")
        body = bytes(buf[:at])
        del buf[: at + len(delimiter)]
        yield ReceivedPart(headers, body)


def _headers(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in raw.decode("latin-1").split("\r\n"):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise MalformedMultipart(f"a part header line is malformed: {line[:80]!r}")
        out[name.strip().lower()] = value.strip()
    return out
