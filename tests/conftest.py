"""Fixtures: an archive on SQLite and on PostgreSQL, a live DIMSE server, real DICOM files."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from hounsfield.archive.context import Archive, open_archive
from hounsfield.db import migrate
from hounsfield.db.engine import make_engine
from hounsfield.dicomnet.install import install
from hounsfield.dimse.server import DimseServer
from hounsfield.settings import Settings


@pytest.fixture(autouse=True, scope="session")
def _dicomnet() -> None:
    """The node's bootstrap installs the pynetdicom fast paths; in-process servers need them."""
    install()


PG_ADMIN = os.environ.get("HOUNSFIELD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]


def _pg(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'index.db'}"
    else:
        yield from _postgresql_database()


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, for tests about a networked database."""
    yield from _postgresql_database()


def _postgresql_database() -> Iterator[str]:
    name = f"hf_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_pg(PG_ADMIN), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    """Settings for a test node: its own folder and database, ports chosen by the OS."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "dimse_port": 0,
        "http_port": 0,
        "host": "127.0.0.1",
        "storage_reserve_bytes": 0,
        "fsync": True,
        # TestClient calls from "testclient", not the loopback: tests of other features run
        # with the HTTP gate open; tests/auth sets http_auth itself.
        "http_auth": "never",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def make_archive(settings: Settings) -> Archive:
    """Upgrade the schema and open the archive."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(make_engine(settings.sqlalchemy_url))
    return open_archive(settings)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Default test settings on each database."""
    return make_settings(tmp_path, database_url)


@pytest.fixture
def archive(settings: Settings) -> Iterator[Archive]:
    """An empty archive on each database."""
    arch = make_archive(settings)
    yield arch
    arch.close()


@pytest.fixture
def server(archive: Archive) -> Iterator[DimseServer]:
    """A running DIMSE server on a free port."""
    srv = DimseServer(archive)
    srv.start()
    yield srv
    srv.stop(grace_seconds=2)
