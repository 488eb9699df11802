"""Fixtures: a node that asks remote callers to log in, with a user (and token) of each role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread

from hounsfield.archive.context import Archive
from hounsfield.archive.importer import import_file
from hounsfield.auth import tokens, users
from hounsfield.catalog import partitions
from hounsfield.web.app import create_app
from tests.conftest import make_archive, make_settings
from tests.data import local

PASSWORD = "correct horse battery"
OTHER = "CLINIC2"
FILE = "MR_small.dcm"


@dataclass
class Node:
    """An archive, its app's test client, and a bearer token per user."""

    archive: Archive
    client: TestClient
    tokens: dict[str, str]
    study: str

    def headers(self, who: str) -> dict[str, str]:
        """The Authorization header of `who`'s token."""
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def auth_archive(tmp_path: Path, **overrides: object) -> Archive:
    """A SQLite archive with a second partition, asking remote callers to authenticate."""
    viewer = tmp_path / "viewer"
    viewer.mkdir()
    (viewer / "index.html").write_text("<!doctype html><title>viewer</title>")
    values: dict[str, object] = {"http_auth": "remote", "viewer_dir": viewer, **overrides}
    arch = make_archive(make_settings(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", **values))
    with arch.engine.begin() as conn:
        partitions.add(conn, OTHER, description="another clinic")
    return arch


def add_people(arch: Archive) -> dict[str, str]:
    """One user of each role (the radiologist reaches only the default partition); tokens."""
    people = {
        "root": ("admin", None),
        "oper": ("operator", None),
        "rad": ("radiologist", [arch.default_partition]),
        "script": ("api", None),
    }
    secrets: dict[str, str] = {}
    for name, (role, parts) in people.items():
        users.add(arch.engine, name, PASSWORD, role, parts)
        secrets[name] = tokens.create(arch.engine, name, "tests", days=1)[1]
    return secrets


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A node with one study in the default partition and one in the other."""
    arch = auth_archive(tmp_path)
    for part in (None, OTHER):
        assert import_file(arch, local(FILE), partition=part).outcome != "rejected"
    study = str(dcmread(local(FILE), stop_before_pixels=True).StudyInstanceUID)
    secrets = add_people(arch)
    with TestClient(create_app(arch)) as client:
        yield Node(arch, client, secrets, study)
    arch.close()
