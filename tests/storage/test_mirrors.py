"""Mirror filesystems as operators declare them: the CLI, the TOML file and the admin API, the
rules a mirror obeys, and that a mirror never takes new objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hounsfield.archive.context import Archive
from hounsfield.cli import app
from hounsfield.errors import InvalidDataset, NotFound, StorageFull
from hounsfield.settings import FilesystemConfig
from hounsfield.storage.tiers import (
    Usage,
    add_filesystem,
    apply_declared,
    list_filesystems,
    remove_filesystem,
    set_filesystem,
)
from hounsfield.web.app import create_app
from tests.conftest import make_archive, make_settings
from tests.mirror_helpers import rows_of
from tests.synth import instance, put


def _by_path(archive: Archive) -> dict[str, Usage]:
    return {u.path: u for u in list_filesystems(archive.engine)}


def test_mirror_rules(archive: Archive, tmp_path: Path) -> None:
    primary = archive.settings.storage_dir
    mirror, other = tmp_path / "mirror", tmp_path / "other"
    with pytest.raises(NotFound):
        add_filesystem(archive.engine, mirror, mirror_of=tmp_path / "unknown")
    with pytest.raises(InvalidDataset, match="sync or async"):
        add_filesystem(archive.engine, mirror, mirror_of=primary, mirror_mode="sometimes")
    with pytest.raises(InvalidDataset, match="itself"):
        add_filesystem(archive.engine, primary, mirror_of=primary)
    assert add_filesystem(archive.engine, mirror, tier=2, mirror_of=primary)
    made = _by_path(archive)[str(mirror.resolve())]
    assert made.mirror_of == str(primary.resolve()) and made.mirror_mode == "sync"
    assert made.tier == 1  # the tier of what it mirrors
    with pytest.raises(InvalidDataset, match="already has a mirror"):
        add_filesystem(archive.engine, other, mirror_of=primary)
    with pytest.raises(InvalidDataset, match="is a mirror itself"):
        add_filesystem(archive.engine, other, mirror_of=mirror)
    with pytest.raises(InvalidDataset, match="has a mirror"):
        add_filesystem(archive.engine, primary, mirror_of=other_fs(archive, other))
    with pytest.raises(InvalidDataset, match="not a mirror"):
        set_filesystem(archive.engine, other, mirror_mode="async")
    assert set_filesystem(archive.engine, mirror, mirror_mode="async").mirror_mode == "async"
    with pytest.raises(InvalidDataset, match="remove that first"):
        remove_filesystem(archive.engine, primary)

    for fs in (primary, other):
        set_filesystem(archive.engine, fs, enabled=False)
    archive.filesystems.invalidate()
    with pytest.raises(StorageFull):
        put(archive, instance())  # the mirror, enabled and tier 1, never takes a new object
    set_filesystem(archive.engine, other, enabled=True)
    archive.filesystems.invalidate()
    ds = instance()
    put(archive, ds)
    assert set(rows_of(archive, str(ds.SOPInstanceUID))) == {other.resolve()}  # no mirror
    third = other_fs(archive, tmp_path / "third")
    with pytest.raises(InvalidDataset, match="holds 1 files"):
        add_filesystem(archive.engine, other, mirror_of=third)


def other_fs(archive: Archive, path: Path) -> Path:
    """Register `path` as a plain filesystem and return it."""
    add_filesystem(archive.engine, path)
    return path


def test_filesystem_cli_adds_and_lists_a_mirror(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    make_archive(settings).close()
    env = {
        "HOUNSFIELD_DATA_DIR": str(settings.data_dir),
        "HOUNSFIELD_DATABASE_URL": database_url,
    }
    runner = CliRunner()
    mirror = tmp_path / "mirror"
    args = ["filesystem", "add", str(mirror), "--mirror-of", str(settings.storage_dir)]
    out = runner.invoke(app, [*args, "--mirror-mode", "async"], env=env)
    assert out.exit_code == 0, out.output
    listed = runner.invoke(app, ["filesystem", "list"], env=env).output
    assert f"{settings.storage_dir.resolve()} (async)" in listed
    rows = json.loads(runner.invoke(app, ["filesystem", "list", "--json"], env=env).output)
    (row,) = [r for r in rows if r["path"] == str(mirror.resolve())]
    assert (row["mirror_of"], row["mirror_mode"]) == (str(settings.storage_dir.resolve()), "async")
    out = runner.invoke(app, ["filesystem", "set", str(mirror), "--mirror-mode", "sync"], env=env)
    assert out.exit_code == 0, out.output
    out = runner.invoke(
        app, ["filesystem", "add", str(tmp_path / "x"), "--mirror-of", "/nowhere"], env=env
    )
    assert out.exit_code == 2 and "no filesystem at /nowhere" in out.output


def test_declared_mirror_before_its_filesystem(tmp_path: Path, database_url: str) -> None:
    archive = make_archive(make_settings(tmp_path, database_url))
    try:
        declared = [
            FilesystemConfig(path=tmp_path / "m2", mirror_of=tmp_path / "t2", mirror_mode="async"),
            FilesystemConfig(path=tmp_path / "t2", tier=2),
        ]
        apply_declared(archive.engine, declared)
        apply_declared(archive.engine, declared)  # idempotent
        m2 = _by_path(archive)[str((tmp_path / "m2").resolve())]
        assert (m2.mirror_of, m2.mirror_mode, m2.tier) == (
            str((tmp_path / "t2").resolve()),
            "async",
            2,
        )
    finally:
        archive.close()


def test_admin_api_adds_a_mirror(archive: Archive, tmp_path: Path) -> None:
    client = TestClient(create_app(archive))
    body = {"path": str(tmp_path / "mirror"), "mirror_of": str(archive.settings.storage_dir)}
    answer = client.post("/admin/filesystems", json=body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["mirror_mode"] == "sync"
    assert client.post("/admin/filesystems", json=body).status_code == 200  # already there
    refused = client.post("/admin/filesystems", json=body | {"path": str(tmp_path / "second")})
    assert refused.status_code == 400 and "already has a mirror" in refused.json()["error"]
    mirrors = [u for u in client.get("/admin/filesystems").json() if u["mirror_of"]]
    assert [u["path"] for u in mirrors] == [str((tmp_path / "mirror").resolve())]
    ds = instance()
    put(archive, ds)  # the new mirror is used at once on this node
    assert len(rows_of(archive, str(ds.SOPInstanceUID))) == 2
