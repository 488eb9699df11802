"""Fixtures for the DICOMweb tests: a real uvicorn server on a free port and dicomweb-client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dicomweb_client import DICOMwebClient

from hounsfield.archive.context import Archive
from hounsfield.archive.importer import import_file
from hounsfield.web.app import create_app
from tests.data import local
from tests.live_http import live


@pytest.fixture
def web(archive: Archive) -> Iterator[str]:
    """The base URL of a live HTTP server over the archive."""
    with live(create_app(archive)) as url:
        yield url


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
