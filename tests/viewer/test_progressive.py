"""OHIF on a throttled network draws a 2k radiograph stored as HTJ2K Lossless RPCL (.202)
before the whole frame has arrived."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from hounsfield.lifecycle.compress import compress_study_uid
from hounsfield.web.app import create_app
from hounsfield.web.viewer.config import study_link
from tests.browser import chromium, require_viewer
from tests.live_http import live
from tests.storage_helpers import store_variant
from tests.viewer.conftest import sqlite_archive
from tests.viewer.test_browser import PIXELS, VIEWPORT

RADIOGRAPH = "RG3_UNCR.dcm"  # 1760 x 1760, 10 bits: about 890 KB as .202
WARM = "CT_small.dcm"  # opened first, unthrottled: bundles and the HTJ2K decoder cached
MBIT = 3.0  # the frame takes about 2.5 s
LATENCY_MS = 40


@dataclass
class Frames:
    """What CDP saw of the frame requests: body bytes received, requests started and done."""

    received: int = 0
    started: int = 0
    finished: int = 0
    last: float = 0.0  # time.monotonic() of the last frame request that finished
    ids: set[str] = field(default_factory=set)

    def settled(self) -> bool:
        """Every frame request has finished, the last one a second ago."""
        idle = time.monotonic() - self.last > 1.0
        return 0 < self.started == self.finished and idle

    def watch(self, cdp: Any) -> None:
        """Count the frame requests' body bytes as they arrive."""

        def sent(event: dict[str, Any]) -> None:
            if "/frames/" in event["request"]["url"]:
                self.ids.add(event["requestId"])
                self.started += 1

        def data(event: dict[str, Any]) -> None:
            if event["requestId"] in self.ids:
                self.received += event["dataLength"]

        def done(event: dict[str, Any]) -> None:
            if event["requestId"] in self.ids:
                self.finished += 1
                self.last = time.monotonic()

        cdp.on("Network.requestWillBeSent", sent)
        cdp.on("Network.dataReceived", data)
        cdp.on("Network.loadingFinished", done)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A live node with the radiograph and a small CT, both compressed to .202."""
    require_viewer()
    archive = sqlite_archive(tmp_path_factory.mktemp("progressive-node"))
    studies = {name: store_variant(archive, name, 0).study for name in (RADIOGRAPH, WARM)}
    for uid in studies.values():
        assert compress_study_uid(archive, uid, "htj2k-lossless-rpcl").compressed == 1
    try:
        with live(create_app(archive)) as url:
            yield url, studies
    finally:
        archive.close()


@pytest.fixture(scope="module")
def context() -> Iterator[Any]:
    """One Chromium profile, so the second page finds OHIF and its decoders in the cache."""
    with chromium(webgl=True) as browser:
        yield browser.new_context(viewport={"width": 1280, "height": 860})


def _shown(page: Any) -> bool:
    stats = page.evaluate(PIXELS, VIEWPORT)
    return bool(stats and stats["std"] > 8)


def _warm(context: Any, url: str) -> None:
    page = context.new_page()
    page.goto(url)
    deadline = time.monotonic() + 60
    while not _shown(page):
        assert time.monotonic() < deadline, "the warm-up study was never drawn"
        page.wait_for_timeout(200)
    page.close()


def test_first_image_before_the_whole_frame(node: tuple[str, dict[str, str]], context: Any) -> None:
    url, studies = node
    _warm(context, url + study_link(studies[WARM]))
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    rate = MBIT * 1e6 / 8
    conditions = {"downloadThroughput": rate, "uploadThroughput": rate}
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": LATENCY_MS, **conditions},
    )
    frames = Frames()
    frames.watch(cdp)
    assert "stackRetrieveOptions" in page.request.get(url + "/app-config.js").text()
    page.goto(url + study_link(studies[RADIOGRAPH]))
    deadline = time.monotonic() + 60
    first: tuple[int, int] | None = None  # bytes received, frame requests finished
    while time.monotonic() < deadline and not frames.settled():
        if first is None and _shown(page):
            first = frames.received, frames.finished
        page.wait_for_timeout(40)
    total = frames.received
    assert first is not None, f"nothing drawn before the frame arrived ({total} bytes)"
    received, finished = first
    print(f"first image after {received} of {total} bytes ({100 * received / total:.1f}%)")
    assert received < total
    assert finished < frames.started  # the last frame request was still under way
    deadline = time.monotonic() + 30
    while not _shown(page):
        assert time.monotonic() < deadline, "the full frame was never drawn"
        page.wait_for_timeout(200)
