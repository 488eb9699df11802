"""A TCP delay line: each chunk is passed on a fixed time after it arrived, in both directions.

    python -m bench.delay_proxy --delay-ms 20 10.77.0.2:7000=127.0.0.1:4242 ...

Every route listens on its first address and connects each client to the second. Chunks
keep their order and are read while earlier ones wait, so the delay adds latency, not a rate
limit (up to HELD chunks per direction are in flight). Prints "ready" once listening; runs
until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import Callable

CHUNK = 64 * 1024
HELD = 512  # chunks in flight per direction (32 MB at most) before the reader waits

Address = tuple[str, int]


def _address(text: str) -> Address:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _pass_on(
    queue: asyncio.Queue[tuple[float, bytes]],
    writer: asyncio.StreamWriter,
    abort: Callable[[], None],
) -> None:
    """Write each chunk when it is due; after a failure keep emptying the queue (so that the
    reader never waits on it) until the end marker."""
    loop = asyncio.get_running_loop()
    failed = False
    while True:
        due, data = await queue.get()
        if not data:
            break
        if failed:
            continue
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)
        try:
            writer.write(data)
            await writer.drain()
        except OSError:
            failed = True
            abort()
    if not failed and writer.can_write_eof():
        writer.write_eof()


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    abort: Callable[[], None],
) -> None:
    """Copy `reader` to `writer`, each chunk `delay` seconds after it was read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(HELD)
    sender = asyncio.create_task(_pass_on(queue, writer, abort))
    try:
        while data := await reader.read(CHUNK):
            await queue.put((loop.time() + delay, data))
    except OSError:
        abort()
    finally:
        await queue.put((loop.time() + delay, b""))
        await sender


async def _connection(
    client_r: asyncio.StreamReader,
    client_w: asyncio.StreamWriter,
    target: Address,
    delay: float,
) -> None:
    try:
        server_r, server_w = await asyncio.open_connection(*target)
    except OSError:
        client_w.close()
        return
    _nodelay(client_w)
    _nodelay(server_w)

    def abort() -> None:  # a reset on one side ends both
        client_w.transport.abort()
        server_w.transport.abort()

    await asyncio.gather(
        _pipe(client_r, server_w, delay, abort), _pipe(server_r, client_w, delay, abort)
    )
    client_w.close()
    server_w.close()


async def serve(routes: list[tuple[Address, Address]], delay: float) -> None:
    """Listen on every route's address until cancelled."""
    servers = []
    for listen, target in routes:

        async def handle(
            r: asyncio.StreamReader, w: asyncio.StreamWriter, target: Address = target
        ) -> None:
            await _connection(r, w, target, delay)

        servers.append(await asyncio.start_server(handle, *listen))
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main() -> None:
    """Parse the routes and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    parser.add_argument("routes", nargs="+", help="LISTEN_HOST:PORT=TARGET_HOST:PORT")
    args = parser.parse_args()
    routes = [(_address(a), _address(b)) for a, b in (r.split("=", 1) for r in args.routes)]
    try:
        asyncio.run(serve(routes, args.delay_ms / 1000))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
