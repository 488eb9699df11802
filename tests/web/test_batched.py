"""A streamed body read in a worker thread a batch at a time: same pieces, fewer trips, and
its source closed however the response ends."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import anyio.to_thread
import httpx
import pytest
from fastapi import FastAPI

from hounsfield.web.batched import batched, streamed
from tests.live_http import live


class Source:
    """Pieces of a given size; notes the thread each is read on and whether it was closed."""

    def __init__(self, count: int, size: int) -> None:
        self.pieces = [bytes([i % 256]) * size for i in range(count)]
        self.threads: list[int] = []
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for piece in self.pieces:
                self.threads.append(threading.get_ident())
                yield piece
        finally:
            self.closed = True


def _collect(source: Source, size: int, stop_after: int | None = None) -> list[bytes]:
    async def run() -> list[bytes]:
        got: list[bytes] = []
        body = batched(iter(source), size)
        async for piece in body:
            got.append(piece)
            if stop_after is not None and len(got) == stop_after:
                break
        await body.aclose()
        return got

    return asyncio.run(run())


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many pieces each trip to a worker thread brought back."""
    counted: list[int] = []
    real = anyio.to_thread.run_sync

    async def counting(func: Callable[..., list[bytes]], *args: object) -> list[bytes]:
        batch = await real(func, *args)
        counted.append(len(batch))
        return batch

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return counted


def test_pieces_come_in_order_a_batch_per_trip(trips: list[int]) -> None:
    source = Source(10, 100)
    assert _collect(source, 300) == source.pieces
    assert trips == [3, 3, 3, 1, 0]  # 300 bytes a trip; the last finds nothing left
    assert threading.get_ident() not in source.threads  # read off the event loop
    assert source.closed


@pytest.mark.parametrize("size", [0, 1])
def test_size_zero_sends_each_piece_alone(size: int, trips: list[int]) -> None:
    source = Source(4, 10)
    assert _collect(source, size) == source.pieces
    assert trips == [1, 1, 1, 1, 0]


def test_a_body_left_early_closes_its_source() -> None:
    source = Source(10, 100)
    assert len(_collect(source, 100, stop_after=2)) == 2
    assert source.closed


def test_a_live_response_carries_the_pieces_and_its_length() -> None:
    source = Source(50, 70_000)
    total = sum(len(p) for p in source.pieces)
    app = FastAPI()

    @app.get("/body")
    def body() -> object:
        return streamed(
            iter(source), "application/octet-stream", headers={"Content-Length": str(total)}
        )

    with live(app) as url:
        response = httpx.get(f"{url}/body")
    assert response.headers["content-length"] == str(total)
    assert response.content == b"".join(source.pieces)
    assert source.closed
