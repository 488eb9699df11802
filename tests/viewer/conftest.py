"""Fixtures for the viewer tests: a node on SQLite, a stand-in viewer folder, a live server."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from hounsfield.archive.context import Archive
from tests.conftest import make_archive, make_settings

INDEX = "<!doctype html><html><head><title>OHIF Viewer</title></head><body></body></html>"
BUNDLE = "app.bundle.0f6159c501addfe9.js"


@pytest.fixture
def viewer_dir(tmp_path: Path) -> Path:
    """A folder laid out like OHIF's dist/: index.html, a hashed bundle (and its gzip copy),
    the shipped app-config.js, an asset."""
    folder = tmp_path / "viewer"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text(INDEX)
    (folder / "app-config.js").write_text("window.config = {name: 'config/default.js'};\n")
    script = "console.log('viewer');\n" * 200
    (folder / BUNDLE).write_text(script)
    (folder / f"{BUNDLE}.gz").write_bytes(gzip.compress(script.encode()))
    (folder / "assets" / "favicon.ico").write_bytes(b"\x00\x00\x01\x00")
    return folder


def sqlite_archive(folder: Path, **overrides: object) -> Archive:
    """An archive on SQLite in `folder` (the viewer does not depend on the database kind)."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = make_settings(folder, f"sqlite:///{folder / 'index.db'}", **overrides)
    return make_archive(settings)
