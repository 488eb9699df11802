"""The node's HTTP server: uvicorn on one listening socket, which every HTTP process of the
node serves (see `hounsfield.node.http_pool`)."""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from hounsfield.dicomnet.tls import harden, https_options
from hounsfield.settings import Settings
from hounsfield.web.header_deadline import header_deadline_protocol


def http_server(app: FastAPI, settings: Settings) -> uvicorn.Server:
    """uvicorn serving `app` with the node's HTTP settings (HTTPS with `http_tls`)."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,
        http=header_deadline_protocol(settings.http_header_timeout),
        **https_options(settings),
    )
    if config.is_ssl:  # uvicorn's context: TLS 1.2 and newer, the node's ciphers
        config.load()
        assert config.ssl is not None
        harden(config.ssl, settings)
    return uvicorn.Server(config)


def listening_socket(server: uvicorn.Server) -> socket.socket:
    """The socket `server` would bind (`host`, `http_port`), bound, to be passed to
    `server.run(sockets=[...])` here and in the node's other HTTP processes. It is made
    with IPPROTO_TCP: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on connections
    whose socket says so, and a response's header and body, written apart, would otherwise
    wait 40 ms for the client's delayed acknowledgement."""
    host, port = server.config.host, server.config.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot listen for HTTP on {host}:{port}: {exc.strerror}"
        ) from exc
    sock.set_inheritable(True)
    return sock
