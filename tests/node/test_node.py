"""A node as operators run it: schema check, TOML settings, /health, /metrics, and crashes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import create_engine, select

from hounsfield.db.tables import file, filesystem, instance
from hounsfield.storage.atomic import file_checksum
from tests.dcmtk import ENV, free_port
from tests.livenode import Node, cli, node_env
from tests.synth import instance as make_instance
from tests.synth import write_part10


def _http(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as rsp:
            return rsp.status, rsp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1] if url.startswith("postgres") else url


def test_serve_refuses_an_outdated_schema(tmp_path: Path, database_url: str) -> None:
    env = node_env(tmp_path / "data", database_url)
    refused = cli(env, "serve", timeout=60)
    assert refused.returncode == 2
    assert "hounsfield db upgrade" in refused.stdout + refused.stderr
    assert cli(env, "db", "upgrade").returncode == 0
    current = cli(env, "db", "current")
    head = re.findall(r"head (\w+)", current.stdout)
    assert head and f"current {head[0]}" in current.stdout


def _metric_when_reported(http: int) -> tuple[str, re.Match[str] | None]:
    """/metrics, once the instance count shows (a DIMSE process reports when its association
    ends, which can be a moment after the peer saw the release)."""
    pattern = r'hounsfield_instances_received_total\{outcome="stored",source="dimse"\} (\S+)'
    deadline = time.monotonic() + 5
    while True:
        status, metrics = _http(http, "/metrics")
        assert status == 200
        received = re.search(pattern, metrics)
        if received or time.monotonic() > deadline:
            return metrics, received
        time.sleep(0.1)


def test_toml_settings_health_and_metrics(tmp_path: Path, database_url: str) -> None:
    config = tmp_path / "hounsfield.toml"
    dimse, http = free_port(), free_port()
    config.write_text(
        f'ae_title = "ARCHIVE1"\ndimse_port = {dimse}\nhttp_port = {http}\n'
        '[[devices]]\nae_title = "VIEWER"\nhost = "10.1.2.3"\nport = 104\n'
    )
    env = node_env(tmp_path / "data", database_url, HOUNSFIELD_CONFIG=str(config))
    for key in ("HOUNSFIELD_DIMSE_PORT", "HOUNSFIELD_HTTP_PORT"):
        del env[key]  # the file decides; the environment would win
    assert cli(env, "db", "upgrade").returncode == 0
    env |= {"HOUNSFIELD_DIMSE_PORT": str(dimse), "HOUNSFIELD_HTTP_PORT": str(http)}
    node = Node(env, tmp_path / "serve.log", ae_title="ARCHIVE1")
    try:
        echo = subprocess.run(
            ["echoscu", "-aec", "ARCHIVE1", "127.0.0.1", str(dimse)], env=ENV, capture_output=True
        )
        assert echo.returncode == 0
        path = write_part10(make_instance(), tmp_path / "one.dcm")
        subprocess.run(
            ["storescu", "-aec", "ARCHIVE1", "127.0.0.1", str(dimse), str(path)],
            env=ENV,
            check=True,
            capture_output=True,
        )
        status, body = _http(http, "/health")
        assert status == 200
        assert json.loads(body) == {
            "status": "ok",
            "database": "ok",
            "storage": "ok",
            "draining": False,
        }
        metrics, received = _metric_when_reported(http)
        assert received and float(received.group(1)) == 1.0
        assert "hounsfield_bytes_received_total" in metrics
        assert "hounsfield_operation_seconds_bucket" in metrics
        assert "hounsfield_associations_total" in metrics
    finally:
        node.signal(signal.SIGTERM)
        assert node.wait() == 0
    listed = cli(env, "device", "list")
    assert "VIEWER" in listed.stdout and "10.1.2.3" in listed.stdout
    assert "stopped" in (tmp_path / "serve.log").read_text()


def _corpus(folder: Path, count: int) -> list[Path]:
    folder.mkdir()
    big = {"Rows": 128, "Columns": 128, "PixelData": bytes(128 * 128 * 2)}
    return [write_part10(make_instance(**big), folder / f"{i:04d}.dcm") for i in range(count)]


def _acknowledged(output: str) -> list[Path]:
    """The files storescu sent and saw a Success response for."""
    acked, current = [], None
    for line in output.splitlines():
        if line.startswith("I: Sending file: "):
            current = Path(line.split(": ", 2)[2].strip())
        elif "Received Store Response (Success)" in line and current is not None:
            acked.append(current)
    return acked


def _check_consistent(database_url: str, acked: list[Path]) -> None:
    """Every acknowledged object is indexed and intact; every index row has its file."""
    engine = create_engine(_sqlalchemy_url(database_url))
    with engine.connect() as conn:
        rows = conn.execute(
            select(instance.c.sop_iuid, filesystem.c.path, file.c.path, file.c.checksum)
            .join(file, file.c.instance_pk == instance.c.pk)
            .join(filesystem, filesystem.c.pk == file.c.filesystem_pk)
        ).all()
    engine.dispose()
    stored = {sop: (Path(root) / rel, checksum) for sop, root, rel, checksum in rows}
    for path, checksum in stored.values():
        assert path.is_file()
        assert file_checksum(path) == checksum
    for sent in acked:
        assert str(dcmread(sent, stop_before_pixels=True).SOPInstanceUID) in stored


def _store_in_background(port: int, files: list[Path]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["storescu", "-v", "-nh", "-aec", "HOUNSFIELD", "127.0.0.1", str(port), *map(str, files)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_acks(proc: subprocess.Popen[str], count: int) -> list[str]:
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if sum("Store Response (Success)" in x for x in lines) >= count:
            break
    return lines


@pytest.mark.parametrize("how", ["server SIGKILL", "server SIGTERM", "client SIGKILL"])
def test_interrupted_ingest_keeps_every_acknowledged_object(
    tmp_path: Path, database_url: str, how: str
) -> None:
    files = _corpus(tmp_path / "corpus", 150)
    env = node_env(tmp_path / "data", database_url)
    assert cli(env, "db", "upgrade").returncode == 0
    node = Node(env, tmp_path / "serve.log")
    client = _store_in_background(node.dimse_port, files)
    lines = _wait_for_acks(client, 40)
    if how == "client SIGKILL":
        client.kill()
    else:
        node.signal(signal.SIGKILL if how == "server SIGKILL" else signal.SIGTERM)
        if how == "server SIGTERM":
            assert node.wait() == 0
    rest, _ = client.communicate(timeout=60)
    acked = _acknowledged("\n".join([*lines, *rest.splitlines()]))
    assert len(acked) >= 40
    if how == "client SIGKILL":
        assert (
            subprocess.run(
                ["echoscu", "-aec", "HOUNSFIELD", "127.0.0.1", str(node.dimse_port)], env=ENV
            ).returncode
            == 0
        )
        node.signal(signal.SIGTERM)
    node.wait()
    _check_consistent(database_url, acked)
    # After a restart everything acknowledged is still there and the node takes more.
    node = Node(env, tmp_path / "serve.log")
    try:
        again = _store_in_background(node.dimse_port, files)
        out, _ = again.communicate(timeout=120)
        assert len(_acknowledged(out)) == len(files), out[-2000:]
    finally:
        node.signal(signal.SIGTERM)
        node.wait()
    _check_consistent(database_url, files)
