"""The node's HTTP socket: connections accepted on it send small writes at once (no Nagle
delay between a response's header and its body), and its port is taken only once."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from pathlib import Path

import pytest
from fastapi import FastAPI

from hounsfield.node.http_server import http_server, listening_socket
from tests.conftest import make_settings


def test_accepted_connections_have_nagle_off(tmp_path: Path) -> None:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    server = http_server(app, make_settings(tmp_path, "sqlite://"))
    sock = listening_socket(server)
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/ping")
        assert conn.getresponse().read() == b'{"pong":"yes"}'
        (served,) = server.server_state.connections
        accepted = served.transport.get_extra_info("socket")
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        conn.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_port_in_use_is_refused_with_its_address(tmp_path: Path) -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    try:
        port = taken.getsockname()[1]
        server = http_server(FastAPI(), make_settings(tmp_path, "sqlite://", http_port=port))
        with pytest.raises(OSError, match=f"cannot listen for HTTP on 127.0.0.1:{port}"):
            listening_socket(server)
    finally:
        taken.close()
