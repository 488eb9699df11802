"""A lean asyncio HTTP/1.1 client for the sessions part: keep-alive pool, whole bodies, gzip."""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

READ_LIMIT = 1 << 20  # longest header block taken
NO_BODY = (204, 304)


class ProtocolError(Exception):
    """An answer this client cannot read."""


@dataclass(frozen=True)
class Answer:
    """One response: status, headers (lower-case names), body decoded and its size as sent."""

    status: int
    headers: dict[str, str]
    body: bytes
    wire: int


@dataclass
class Connection:
    """One open TCP connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        """Close without waiting."""
        self.writer.close()


def _head(block: bytes) -> tuple[str, int, dict[str, str]]:
    """(HTTP version, status, headers) of a response head."""
    lines = block.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ProtocolError(f"bad status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return parts[0], int(parts[1]), headers


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return bytes(out)
        out += await reader.readexactly(size)
        await reader.readexactly(2)


async def _body(reader: asyncio.StreamReader, status: int, headers: dict[str, str]) -> bytes:
    if status in NO_BODY or 100 <= status < 200:
        return b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _chunked(reader)
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()


def _decoded(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)
    if encoding in ("", "identity"):
        return body
    raise ProtocolError(f"content-encoding {encoding!r}")


def _keeps(version: str, headers: dict[str, str], framed: bool) -> bool:
    """Whether the connection may carry the next request."""
    connection = headers.get("connection", "").lower()
    if not framed or "close" in connection:
        return False
    return version != "HTTP/1.0" or "keep-alive" in connection


async def exchange(conn: Connection, request: bytes) -> tuple[Answer, bool]:
    """Send `request`, read the whole answer; the answer and whether to keep the connection."""
    conn.writer.write(request)
    await conn.writer.drain()
    version, status, headers = _head(await conn.reader.readuntil(b"\r\n\r\n"))
    body = await _body(conn.reader, status, headers)
    framed = status in NO_BODY or "content-length" in headers or "transfer-encoding" in headers
    answer = Answer(status, headers, _decoded(body, headers.get("content-encoding", "")), len(body))
    return answer, _keeps(version, headers, framed)


def _stale(exc: BaseException) -> bool:
    """A failure that means a kept-alive connection had been closed by the server."""
    if isinstance(exc, asyncio.IncompleteReadError):
        return not exc.partial
    return isinstance(exc, ConnectionError)


class Pool:
    """At most `size` keep-alive connections to one origin, as a browser keeps per host."""

    def __init__(self, root: str, size: int, timeout: float, source: str | None = None) -> None:
        url = urlsplit(root)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.source = (source, 0) if source else None  # the workstation's own address
        self.timeout = timeout
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Connection] = []

    async def _open(self) -> Connection:
        reader, writer = await asyncio.open_connection(
            self.host, self.port, limit=READ_LIMIT, local_addr=self.source
        )
        return Connection(reader, writer)

    def _request(self, target: str, headers: dict[str, str]) -> bytes:
        lines = [f"GET {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _on(self, conn: Connection, request: bytes) -> Answer:
        """One exchange on `conn`, which is closed unless it goes back to the idle list."""
        try:
            answer, keep = await exchange(conn, request)
        except BaseException:
            conn.close()
            raise
        if keep:
            self._idle.append(conn)
        else:
            conn.close()
        return answer

    async def _send(self, request: bytes) -> Answer:
        if self._idle:
            try:
                return await self._on(self._idle.pop(), request)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                if not _stale(exc):
                    raise
        # no idle connection, or the server had closed it: a fresh one, as browsers retry
        return await self._on(await self._open(), request)

    async def get(self, target: str, headers: dict[str, str]) -> Answer:
        """GET `target` (a path with its query) within the pool's time-out."""
        async with self._slots:
            async with asyncio.timeout(self.timeout):
                return await self._send(self._request(target, headers))

    def close(self) -> None:
        """Close every idle connection."""
        while self._idle:
            self._idle.pop().close()
