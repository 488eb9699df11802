"""One study opened in OHIF in headless Chromium on a throttled network (CDP): when the
viewport first shows an image, when its frame is complete and drawn, and its bytes by then."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [  # WebGL with no GPU: SwiftShader through ANGLE
    "--no-sandbox",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
]
# Every 20 ms: a sample of the viewport's pixels; each change is kept with its wall time (ms).
WATCH = """(() => {
  window.__draws = [];
  let last = null;
  setInterval(() => {
    const c = document.querySelector('canvas.cornerstone-canvas');
    if (!c || !c.width || !c.height) return;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0, sum = 0, squares = 0, sig = 0;
    for (let i = 0; i < d.length; i += 4 * 13) {
      const v = d[i]; n += 1; sum += v; squares += v * v; sig = (sig * 31 + v) % 1000000007;
    }
    const mean = sum / n, std = Math.sqrt(Math.max(0, squares / n - mean * mean));
    if (sig !== last) {
      last = sig;
      window.__draws.push({t: performance.timeOrigin + performance.now(), std: std});
    }
  }, 20);
})();"""


@dataclass
class Sample:
    """One opening of a study: seconds from navigation, body bytes of the shown frame up to
    then, and frame requests in all (other images of a series are prefetched)."""

    first_s: float
    first_bytes: int
    full_s: float
    full_bytes: int
    requests: int


@dataclass
class _Frames:
    """Frame requests seen through CDP, in wall-clock milliseconds."""

    offset: float = 0.0  # wallTime - timestamp of the requests (seconds)
    urls: dict[str, str] = field(default_factory=dict)  # request id -> URL
    received: list[tuple[str, float, int]] = field(default_factory=list)
    finished: list[tuple[str, float]] = field(default_factory=list)

    def watch(self, cdp: Any) -> None:
        def sent(event: dict[str, Any]) -> None:
            if "/frames/" in event["request"]["url"]:
                self.offset = event["wallTime"] - event["timestamp"]
                self.urls[event["requestId"]] = event["request"]["url"]

        def data(event: dict[str, Any]) -> None:
            if event["requestId"] in self.urls:
                at = (event["timestamp"] + self.offset) * 1000
                self.received.append((self.urls[event["requestId"]], at, event["dataLength"]))

        def done(event: dict[str, Any]) -> None:
            if event["requestId"] in self.urls:
                at = (event["timestamp"] + self.offset) * 1000
                self.finished.append((self.urls[event["requestId"]], at))

        cdp.on("Network.requestWillBeSent", sent)
        cdp.on("Network.dataReceived", data)
        cdp.on("Network.loadingFinished", done)

    def settled(self, idle_ms: float) -> bool:
        """Every frame request has finished, the last one `idle_ms` ago."""
        if not self.urls or len(self.finished) < len(self.urls):
            return False
        return time.time() * 1000 - max(t for _, t in self.finished) > idle_ms

    @property
    def shown(self) -> str:
        """The URL of the first frame requested: the image the viewport shows."""
        return next(iter(self.urls.values()))

    def done_at(self) -> float:
        """When the last request for the shown frame finished (ms)."""
        return max(t for url, t in self.finished if url == self.shown)

    def bytes_until(self, at: float) -> int:
        """Body bytes of the shown frame received up to wall time `at` (ms)."""
        return sum(n for url, t, n in self.received if url == self.shown and t <= at)


@contextmanager
def browser() -> Iterator[Any]:
    """A Chromium profile (one cache for every page) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield chromium.new_context(viewport={"width": 1280, "height": 860})
        finally:
            chromium.close()


def _drawn(page: Any) -> list[dict[str, float]]:
    return [d for d in page.evaluate("window.__draws || []") if d["std"] > 8]


def warm(context: Any, url: str, timeout: float = 90) -> None:
    """Open `url` unthrottled until an image shows: OHIF's files and decoders get cached."""
    page = context.new_page()
    page.add_init_script(WATCH)
    page.goto(url)
    deadline = time.monotonic() + timeout
    while not _drawn(page):
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing drawn at {url} within {timeout:.0f} s")
        page.wait_for_timeout(200)
    page.close()


def open_study(context: Any, url: str, mbit: float, latency_ms: float) -> Sample:
    """Open `url` with the network throttled; wait until the frames have settled."""
    page = context.new_page()
    try:
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        rate = mbit * 1e6 / 8
        cdp.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": latency_ms,
                "downloadThroughput": rate,
                "uploadThroughput": rate,
            },
        )
        frames = _Frames()
        frames.watch(cdp)
        page.add_init_script(WATCH)
        start = time.time() * 1000
        page.goto(url)
        deadline = time.monotonic() + 120
        while not (frames.settled(1500) and _drawn(page)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"frames did not settle at {url}: {len(frames.urls)} requests")
            page.wait_for_timeout(200)
        page.wait_for_timeout(500)
        draws = _drawn(page)
        first = draws[0]["t"]
        full = max(draws[-1]["t"], frames.done_at())
        return Sample(
            (first - start) / 1000,
            frames.bytes_until(first),
            (full - start) / 1000,
            frames.bytes_until(full),
            len(frames.urls),
        )
    finally:
        page.close()
