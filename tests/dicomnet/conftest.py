"""Fixtures of the DICOM network layer's tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from hounsfield.archive.context import Archive
from hounsfield.dicomnet.direct import association
from hounsfield.dimse.server import DimseServer


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every association the direct path took on."""
    taken: list[Any] = []
    original = association.serve

    def counting(server: Any, request: socket.socket, client_address: Any) -> Any:
        taken.append(client_address)
        return original(server, request, client_address)

    monkeypatch.setattr(association, "serve", counting)
    return taken


@contextmanager
def serving_pair(archive: Archive) -> Iterator[tuple[DimseServer, DimseServer]]:
    """Two servers on one archive: the direct path on (queries and storage), and off."""
    archive.settings.dimse_query_path = False
    plain = DimseServer(archive)
    plain.start()
    archive.settings.dimse_query_path = archive.settings.dimse_store_path = True
    own = DimseServer(archive)
    own.start()
    try:
        yield own, plain
    finally:
        own.stop(1)
        plain.stop(1)


@pytest.fixture
def pair(archive: Archive) -> Iterator[tuple[DimseServer, DimseServer]]:
    """`serving_pair` on the test's archive."""
    with serving_pair(archive) as servers:
        yield servers
