"""Fixtures for the admin page tests: a TestClient over the app and a stored study."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hounsfield.archive.context import Archive
from hounsfield.archive.store import StoreResult
from hounsfield.web.app import create_app
from tests.storage_helpers import store_variant


@pytest.fixture
def ui(archive: Archive) -> Iterator[TestClient]:
    """A client of the whole HTTP application over the archive."""
    with TestClient(create_app(archive)) as client:
        yield client


@pytest.fixture
def stored(archive: Archive) -> StoreResult:
    """One study made from a real CT file."""
    return store_variant(archive, "CT_small.dcm", 1)


def htmx(**headers: str) -> dict[str, str]:
    """The headers htmx sends with its requests."""
    return {"HX-Request": "true", **headers}
