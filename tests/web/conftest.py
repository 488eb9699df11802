"""Fixtures for the DICOMweb tests: a real uvicorn server on a free port and dicomweb-client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from dicomweb_client import DICOMwebClient

from hounsfield.archive.context import Archive
from hounsfield.archive.importer import import_file
from hounsfield.web.app import create_app
from tests.data import local


@pytest.fixture
def web(archive: Archive) -> Iterator[str]:
    """The base URL of a live HTTP server over the archive."""
    config = uvicorn.Config(
        create_app(archive), host="127.0.0.1", port=0, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn stopped while starting"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def client(web: str) -> DICOMwebClient:
    """dicomweb-client pointed at /dicomweb."""
    return DICOMwebClient(url=f"{web}/dicomweb")


def put_files(archive: Archive, *names: str) -> list[Path]:
    """Import named test files through the ingest path; their paths."""
    paths = [local(n) for n in names]
    for path in paths:
        item = import_file(archive, path)
        assert item.outcome != "rejected", item.reason
    return paths
