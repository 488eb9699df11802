"""A slow HTTP client is closed when its request header is not complete in time; normal
clients, keep-alive connections and slow answers are not."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from hounsfield.web.header_deadline import header_deadline_protocol

DEADLINE = 1.0


@pytest.fixture
def base_url() -> Iterator[str]:
    app = FastAPI()

    @app.get("/fast")
    def fast() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(DEADLINE * 2)  # answering takes longer than the header deadline
        return {"ok": "late"}

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", http=header_deadline_protocol(DEADLINE)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _closed_after(sock: socket.socket, drip: bytes, gap: float, limit: float) -> float | None:
    """Send `drip` a byte every `gap` seconds; seconds until the server closed, or None."""
    started = time.monotonic()
    sock.settimeout(gap)
    for byte in drip:
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(1, socket.MSG_PEEK) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
        if time.monotonic() - started > limit:
            return None
    return None


def test_a_header_sent_a_byte_at_a_time_is_cut_off(base_url: str) -> None:
    host, port = base_url.removeprefix("http://").split(":")
    drip = b"GET /fast HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
    with socket.create_connection((host, int(port))) as sock:
        closed = _closed_after(sock, drip, gap=0.2, limit=DEADLINE * 6)
    assert closed is not None and closed < DEADLINE * 4
    assert httpx.get(f"{base_url}/fast").json() == {"ok": "yes"}  # others are served


def test_keep_alive_and_slow_answers_are_left_alone(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        assert client.get("/slow").json() == {"ok": "late"}  # answering is not the header
        time.sleep(DEADLINE / 2)
        assert client.get("/fast").json() == {"ok": "yes"}  # the same kept-alive connection
