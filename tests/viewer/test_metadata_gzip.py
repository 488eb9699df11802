"""Study metadata goes gzip'd to a viewer that accepts gzip, and as it is to one that does not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hounsfield.archive.context import Archive
from hounsfield.web.app import create_app
from hounsfield.web.dicomweb.packed import takes_gzip
from tests.storage_helpers import store_variant
from tests.viewer.conftest import sqlite_archive


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    arch = sqlite_archive(tmp_path / "node")
    yield arch
    arch.close()


def test_accept_encoding_parsing() -> None:
    assert takes_gzip("gzip, deflate, br, zstd")
    assert takes_gzip("br;q=1.0, gzip;q=0.5")
    assert takes_gzip("*")
    assert not takes_gzip("gzip;q=0, *")
    assert not takes_gzip("identity")
    assert not takes_gzip(None)
    assert not takes_gzip("*, gzip;q=0")


def test_study_metadata_is_gzipped_when_accepted(archive: Archive) -> None:
    study = store_variant(archive, "CT_small.dcm", 1).study
    url = f"/dicomweb/studies/{study}/metadata"
    with TestClient(create_app(archive)) as client:
        packed = client.get(url, headers={"Accept-Encoding": "gzip"})
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert packed.status_code == plain.status_code == 200
    assert packed.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in packed.headers["vary"].lower()
    assert "content-encoding" not in plain.headers
    assert int(packed.headers["content-length"]) < len(plain.content)
    assert packed.content == plain.content  # httpx undoes the gzip
    [instance] = json.loads(plain.content)
    assert instance["0020000D"]["Value"] == [study]
