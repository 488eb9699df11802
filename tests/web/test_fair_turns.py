"""HTTP reads take fair turns: a client with nothing else outstanding goes first, the others
client by client (so one viewer's prefetch does not hold up another viewer's first image)."""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from collections.abc import Hashable
from multiprocessing.sharedctypes import RawArray
from pathlib import Path

from hounsfield.web.app import create_app
from hounsfield.web.fair import SharedCounts, Turns
from tests.conftest import make_archive, make_settings
from tests.live_http import live


def test_turns_go_to_lone_requests_first_then_client_by_client() -> None:
    async def scenario() -> list[str]:
        turns, order = Turns(1), []
        await turns.take("holder")

        async def request(client: Hashable, name: str) -> None:
            await turns.take(client)
            order.append(name)
            turns.give_back()
            turns.done(client)

        arrivals = ["A1", "A2", "A3", "C1", "C2", "B1"]
        tasks = []
        for name in arrivals:
            tasks.append(asyncio.create_task(request(name[0], name)))
            await asyncio.sleep(0)  # each waits in the order it came
        turns.give_back()
        turns.done("holder")
        await asyncio.gather(*tasks)
        assert turns.free == 1 and not turns.outstanding
        return order

    # A1, C1 and B1 came when their client had nothing else outstanding.
    assert asyncio.run(scenario()) == ["A1", "C1", "B1", "A2", "C2", "A3"]


def test_requests_outstanding_in_another_process_count() -> None:
    """With several HTTP processes a client's requests are counted over all of them: a
    request whose client has one running in the other process waits its round, not as a
    lone request; what each process counts is in its own row and ends at zero."""
    table = RawArray("i", 2 * 16)
    ours, theirs = SharedCounts(table, 0, 2, 16), SharedCounts(table, 1, 2, 16)

    async def scenario() -> list[str]:
        turns, order = Turns(1, ours), []
        await turns.take("holder")

        async def request(client: Hashable, name: str) -> None:
            await turns.take(client)
            order.append(name)
            turns.give_back()
            turns.done(client)

        assert theirs.add("A", 1) == 0  # A's prefetch runs in the other process
        tasks = []
        for name in ["A1", "B1", "B2", "C1"]:
            tasks.append(asyncio.create_task(request(name[0], name)))
            await asyncio.sleep(0)
        turns.give_back()
        turns.done("holder")
        await asyncio.gather(*tasks)
        assert theirs.add("A", -1) == 1
        return order

    # B1 and C1 came alone; A1 had a request outstanding elsewhere: its round, before B2's.
    assert asyncio.run(scenario()) == ["B1", "C1", "A1", "B2"]
    assert list(table) == [0] * 32


def test_a_cancelled_wait_passes_its_turn_on() -> None:
    async def scenario() -> list[str]:
        turns, order = Turns(1), []
        await turns.take("holder")

        async def request(client: str) -> None:
            await turns.take(client)
            order.append(client)
            turns.give_back()
            turns.done(client)

        gone = asyncio.create_task(request("gone"))
        stays = asyncio.create_task(request("stays"))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        turns.done("gone")  # as the middleware does when its wait is cancelled
        turns.give_back()
        turns.done("holder")
        await stays
        assert turns.free == 1 and not turns.outstanding
        return order

    assert asyncio.run(scenario()) == ["stays"]


def _get(base: str, source: str, path: str, done: list[tuple[str, float]], name: str) -> None:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source, 0))
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        assert answer.status == 200, answer.read()
        answer.read()
        done.append((name, time.monotonic()))
    finally:
        conn.close()


def test_a_viewers_lone_request_is_served_ahead_of_another_viewers_backlog(
    tmp_path: Path,
) -> None:
    """One handler turn; viewer A (127.0.0.2) has six slow requests waiting when viewer B
    (127.0.0.3) asks for one: B's is served next, not after A's backlog."""
    archive = make_archive(
        make_settings(tmp_path, f"sqlite:///{tmp_path / 'i.db'}", http_threads=1)
    )
    app = create_app(archive)

    @app.get("/slow")
    def slow() -> dict[str, bool]:
        time.sleep(0.15)
        return {"ok": True}

    app.router.routes.insert(0, app.router.routes.pop())  # ahead of the viewer's fallback

    done: list[tuple[str, float]] = []
    try:
        with live(app) as base:
            viewer_a = [
                threading.Thread(target=_get, args=(base, "127.0.0.2", "/slow", done, f"A{i}"))
                for i in range(6)
            ]
            for thread in viewer_a:
                thread.start()
            time.sleep(0.08)  # A's first is running, the others wait
            viewer_b = threading.Thread(target=_get, args=(base, "127.0.0.3", "/slow", done, "B"))
            viewer_b.start()
            for thread in [*viewer_a, viewer_b]:
                thread.join(timeout=30)
    finally:
        archive.close()
    order = [name for name, _ in sorted(done, key=lambda x: x[1])]
    assert len(order) == 7, order
    assert order.index("B") <= 2, order  # without turns it would come last
