"""`hounsfield send`, `find`, `get`, `move` and `device add --alternate`, as typed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from typer.testing import CliRunner, Result

from hounsfield.archive.context import Archive
from hounsfield.cli import app
from hounsfield.dimse.server import DimseServer
from hounsfield.sites.devices import Device, add_device
from tests.client.peers import CountingSCP, closed_port
from tests.conftest import make_archive, make_settings
from tests.synth import instance, write_part10


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Archive, DimseServer, dict[str, str]]]:
    """A node serving DIMSE, and the environment of a CLI on the same archive."""
    settings = make_settings(tmp_path / "node", f"sqlite:///{tmp_path / 'index.db'}")
    archive = make_archive(settings)
    server = DimseServer(archive)
    server.start()
    env = {
        "HOUNSFIELD_DATA_DIR": str(settings.data_dir),
        "HOUNSFIELD_DATABASE_URL": str(settings.database_url),
    }
    yield archive, server, env
    server.stop(grace_seconds=2)
    archive.close()


def _run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def test_send_find_get_and_move_fail_over_from_a_dead_node(
    served: tuple[Archive, DimseServer, dict[str, str]], tmp_path: Path
) -> None:
    archive, server, env = served
    study, series = generate_uid(), generate_uid()
    folder = tmp_path / "in" / "deeper"
    folder.mkdir(parents=True)
    for n in range(4):
        ds = instance(StudyInstanceUID=study, SeriesInstanceUID=series, PatientID="CLI")
        write_part10(ds, folder / f"{n}.dcm")
    nodes = f"127.0.0.1:{closed_port()},127.0.0.1:{server.port}"

    sent = _run(env, "send", str(tmp_path / "in"), "--to", nodes, "--aet", "MODALITY")
    assert sent.exit_code == 0, sent.output
    assert "sent 4, failed 0, failovers 1" in sent.output

    found = _run(env, "find", "--to", nodes, "-k", "PatientID=CLI", "--json")
    assert found.exit_code == 0, found.output
    rows = json.loads(found.stdout)
    assert [r["StudyInstanceUID"] for r in rows] == [study]
    assert rows[0]["NumberOfStudyRelatedInstances"] == "4"
    table = _run(env, "find", "--to", nodes, "-k", f"StudyInstanceUID={study}", "--level", "SERIES")
    assert table.exit_code == 0 and series in table.output

    got = _run(env, "get", "--to", nodes, "-k", f"StudyInstanceUID={study}", "--out",
               str(tmp_path / "got"))  # fmt: skip
    assert got.exit_code == 0, got.output
    assert "completed 4" in got.output and len(list((tmp_path / "got").iterdir())) == 4

    dest = CountingSCP("DEST")
    add_device(archive, Device("DEST", "127.0.0.1", dest.port))
    try:
        moved = _run(env, "move", "--to", nodes, "-k", f"StudyInstanceUID={study}",
                     "--dest", "DEST")  # fmt: skip
    finally:
        dest.stop()
    assert moved.exit_code == 0, moved.output
    assert len(dest.received) == 4


def test_a_device_names_the_nodes_and_bad_input_is_refused(
    served: tuple[Archive, DimseServer, dict[str, str]], tmp_path: Path
) -> None:
    _archive, server, env = served
    added = _run(env, "device", "add", "HOUNSFIELD", "127.0.0.1", str(closed_port()),
                 "--alternate", f"127.0.0.1:{server.port}")  # fmt: skip
    assert added.exit_code == 0, added.output
    assert f"also 127.0.0.1:{server.port}" in added.output
    listed = json.loads(_run(env, "device", "list", "--json").stdout)
    assert listed[0]["alternates"] == [f"127.0.0.1:{server.port}"]
    assert f"127.0.0.1:{server.port}" in _run(env, "device", "list").output

    path = write_part10(instance(), tmp_path / "one.dcm")
    sent = _run(env, "send", str(path), "--to", "HOUNSFIELD")
    assert sent.exit_code == 0, sent.output
    assert "sent 1, failed 0, failovers 1" in sent.output

    assert _run(env, "send", str(path), "--to", "NOBODY").exit_code == 2
    assert _run(env, "find", "--to", "HOUNSFIELD", "-k", "NoSuchKeyword=1").exit_code == 2
    bad = _run(env, "device", "add", "X", "h", "1", "--alternate", "nothing")
    assert bad.exit_code == 2 and "alternate" in bad.output
    down = _run(env, "send", str(path), "--to", f"127.0.0.1:{closed_port()}")
    assert down.exit_code == 1 and "sent 0, failed 1" in down.output
