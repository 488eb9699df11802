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
    """The socket `server` would bind (`host`, `http_port`), bound and listening, to be
    passed to `server.run(sockets=[...])` here and in the node's other HTTP processes."""
    return server.config.bind_socket()
