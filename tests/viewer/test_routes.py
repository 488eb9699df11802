"""The viewer's routes: app-config.js per partition, caching, gzip, the SPA fallback behind the
node's own paths."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hounsfield.archive.context import Archive
from hounsfield.catalog import partitions
from hounsfield.web.app import create_app
from hounsfield.web.viewer.config import study_link
from tests.viewer.conftest import BUNDLE, sqlite_archive

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def archive(tmp_path: Path, viewer_dir: Path) -> Iterator[Archive]:
    """A node whose viewer is the stand-in folder, with a second partition."""
    arch = sqlite_archive(tmp_path / "node", viewer_dir=viewer_dir)
    with arch.engine.begin() as conn:
        partitions.add(conn, "CLINIC 2", description="north")
    yield arch
    arch.close()


@pytest.fixture
def client(archive: Archive) -> Iterator[TestClient]:
    with TestClient(create_app(archive)) as test_client:
        yield test_client


def config_of(text: str) -> dict[str, Any]:
    """The JSON object assigned to window.config in app-config.js."""
    start = text.index("window.config = ") + len("window.config = ")
    return json.loads(text[start : text.index("};\n", start) + 1])


def test_app_config_points_at_every_partition(client: TestClient) -> None:
    answer = client.get("/app-config.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    assert answer.headers["cache-control"] == "no-cache"
    config = config_of(answer.text)
    sources = {s["sourceName"]: s for s in config["dataSources"]}
    assert list(sources) == ["hounsfield", "clinic-2"]
    assert config["defaultDataSourceName"] == "hounsfield"
    default = sources["hounsfield"]
    assert default["namespace"] == "@ohif/extension-default.dataSourcesModule.dicomweb"
    settings = default["configuration"]
    for root in ("qidoRoot", "wadoRoot", "wadoUriRoot"):
        assert settings[root] == "http://testserver/dicomweb"
    assert settings["qidoSupportsIncludeField"] is True
    assert settings["supportsReject"] is False
    assert settings["imageRendering"] == "wadors"
    assert settings["thumbnailRendering"] == "thumbnail"
    assert settings["bulkDataURI"]["enabled"] is True
    assert settings["omitQuotationForMultipartRequest"] is True
    clinic = sources["clinic-2"]["configuration"]
    assert clinic["qidoRoot"] == "http://testserver/dicomweb/aets/CLINIC%202"
    assert clinic["friendlyName"] == "CLINIC 2 (north)"
    assert "createLogoComponentFn" in answer.text and "'/ui/'" in answer.text
    # the shipped example is replaced, not served
    assert "config/default.js" not in answer.text


def test_app_config_follows_public_url(tmp_path: Path, viewer_dir: Path) -> None:
    arch = sqlite_archive(tmp_path / "proxied", viewer_dir=viewer_dir, public_url="https://pacs/")
    try:
        with TestClient(create_app(arch)) as client:
            config = config_of(client.get("/app-config.js").text)
    finally:
        arch.close()
    assert config["dataSources"][0]["configuration"]["wadoRoot"] == "https://pacs/dicomweb"


def test_static_files_and_caching(client: TestClient, viewer_dir: Path) -> None:
    bundle = client.get(f"/{BUNDLE}", headers={"Accept-Encoding": "gzip"})
    assert bundle.status_code == 200
    assert bundle.headers["content-encoding"] == "gzip"
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert bundle.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert bundle.text == (viewer_dir / BUNDLE).read_text()  # decoded by the client
    plain = client.get(f"/{BUNDLE}", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == (viewer_dir / BUNDLE).read_bytes()
    unchanged = {"If-None-Match": plain.headers["etag"], "Accept-Encoding": "identity"}
    again = client.get(f"/{BUNDLE}", headers=unchanged)
    assert again.status_code == 304
    index = client.get("/", headers=HTML)
    assert index.status_code == 200 and "OHIF Viewer" in index.text
    assert index.headers["cache-control"] == "no-cache"
    icon = client.get("/assets/favicon.ico")
    assert icon.status_code == 200 and icon.headers["cache-control"] == "no-cache"
    assert client.head("/index.html").status_code == 200
    assert client.get("/../index.db").status_code == 404


def test_spa_fallback(client: TestClient) -> None:
    for path in (
        "/viewer?StudyInstanceUIDs=1.2.3",
        "/viewer/clinic-2?StudyInstanceUIDs=1.2",
        "/local",
    ):
        page = client.get(path, headers=HTML)
        assert page.status_code == 200, path
        assert "OHIF Viewer" in page.text
        assert page.headers["cache-control"] == "no-cache"
    missing = client.get("/no-such-bundle.js", headers={"Accept": "*/*"})
    assert missing.status_code == 404


def test_node_paths_are_not_shadowed(client: TestClient) -> None:
    assert client.get("/health").headers["content-type"] == "application/json"
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")
    assert "swagger" in client.get("/docs", headers=HTML).text.lower()
    assert client.get("/openapi.json").json()["info"]["title"] == "Hounsfield"
    studies = client.get("/dicomweb/studies", headers=HTML)
    assert studies.status_code == 200 and studies.json() == []
    for path in ("/dicomweb/nothing", "/admin/nothing", "/ui", "/ui/nothing", "/metrics/x"):
        answer = client.get(path, headers=HTML)
        assert "OHIF Viewer" not in answer.text, path
        assert answer.status_code in (404, 405) or path.startswith("/ui"), path
    assert client.post("/dicomweb/nothing").status_code in (404, 405)


def test_study_link() -> None:
    assert study_link("1.2.3") == "/viewer?StudyInstanceUIDs=1.2.3"
    assert study_link("1.2.3", "HOUNSFIELD", "HOUNSFIELD") == "/viewer?StudyInstanceUIDs=1.2.3"
    assert study_link("1.2", "CLINIC 2", "HOUNSFIELD") == "/viewer/clinic-2?StudyInstanceUIDs=1.2"


def test_no_viewer_installed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    arch = sqlite_archive(tmp_path / "bare", viewer_dir=tmp_path / "absent")
    try:
        with caplog.at_level(logging.INFO, logger="hounsfield.web.viewer.routes"):
            app = create_app(arch)
        with TestClient(app) as client:
            assert client.get("/", headers=HTML).status_code == 404
            assert client.get("/app-config.js").status_code == 404
            assert client.get("/health").status_code == 200
    finally:
        arch.close()
    assert any("no viewer" in r.getMessage() for r in caplog.records)
