"""Fixtures of the DICOM network layer's tests."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from hounsfield.dicomnet.direct import association


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
