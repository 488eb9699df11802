"""Measure a link with plain sockets: TCP round trip (ping-pong) and bulk throughput.

python -m bench.link_check serve HOST PORT          # the far end; prints "ready"
python -m bench.link_check probe HOST PORT [BYTES]  # prints {"rtt_ms": ..., "mbit": ...}
"""

from __future__ import annotations

import json
import socket
import socketserver
import statistics
import struct
import sys
import time

PING = b"p"
BULK = b"t"
PING_SIZE = 64
PINGS = 20
BULK_BYTES = 8_000_000
CHUNK = 64 * 1024
LENGTH = struct.Struct(">Q")


def _exactly(sock: socket.socket, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        got = sock.recv(min(size - len(out), CHUNK))
        if not got:
            raise ConnectionError("closed early")
        out += got
    return bytes(out)


class _Far(socketserver.BaseRequestHandler):
    """Echo pings; swallow a bulk transfer and answer "ok" at its end."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mode = sock.recv(1)
        if mode == PING:
            while (data := sock.recv(PING_SIZE, socket.MSG_WAITALL)) and len(data) == PING_SIZE:
                sock.sendall(data)
        elif mode == BULK:
            left = LENGTH.unpack(_exactly(sock, LENGTH.size))[0]
            while left > 0:
                got = sock.recv(min(left, CHUNK))
                if not got:
                    return
                left -= len(got)
            sock.sendall(b"ok")


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def round_trip_ms(host: str, port: int, pings: int = PINGS) -> float:
    """Median time for a 64-byte message to come back."""
    with _connect(host, port) as sock:
        sock.sendall(PING)
        samples = []
        for _ in range(pings + 1):  # the first one is a warm-up
            started = time.perf_counter()
            sock.sendall(b"x" * PING_SIZE)
            _exactly(sock, PING_SIZE)
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples[1:])


def throughput_mbit(host: str, port: int, size: int = BULK_BYTES) -> float:
    """Megabits per second of `size` bytes sent until the far end said it had them all."""
    block = b"\0" * CHUNK
    with _connect(host, port) as sock:
        sock.sendall(BULK + LENGTH.pack(size))
        started = time.perf_counter()
        left = size
        while left > 0:
            left -= sock.send(block[: min(left, CHUNK)])
        _exactly(sock, 2)
        seconds = time.perf_counter() - started
    return size * 8 / seconds / 1e6


def main() -> None:
    """serve or probe, as the arguments say."""
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "serve":
        with _Server((host, port), _Far) as server:
            print("ready", flush=True)
            server.serve_forever()
    elif mode == "probe":
        size = int(sys.argv[4]) if len(sys.argv) > 4 else BULK_BYTES
        rtt = round_trip_ms(host, port)
        print(json.dumps({"rtt_ms": rtt, "mbit": throughput_mbit(host, port, size)}))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
