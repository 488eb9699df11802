"""One study opened in OHIF in headless Chromium on a throttled network (CDP): when the
viewport first shows an image and when at full quality, its bytes, and every request."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.viewer_page import SHOWN, WATCH
from bench.viewer_timeline import (
    FULL_RESOLUTION,
    Milestones,
    Timeline,
    decoded_from,
    milestones,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [  # WebGL with no GPU: SwiftShader through ANGLE
    "--no-sandbox",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
]


@dataclass
class Sample:
    """One opening of a study: first image and full quality in seconds from navigation, and
    the first image from the first request for the shown frame's pixels; body bytes of the
    shown frame the first image was decoded from and in all, of every frame in all, and the
    frame requests (other images of a series are prefetched)."""

    first_s: float
    first_bytes: int
    full_s: float
    full_bytes: int
    requests: int
    first_from_request_s: float
    all_frame_bytes: int
    marks: Milestones
    rows: list[dict[str, Any]] = field(default_factory=list)
    draws: list[dict[str, float]] = field(default_factory=list)
    renders: list[dict[str, Any]] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    started: float = 0.0  # wall time of the navigation (ms)
    shown: str = ""  # the URL of the shown frame
    server_s: float | None = None  # the server's time to answer the first request for it
    load: float = 0.0  # the machine's 1-minute load average when the study was opened


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


def _settled(line: Timeline, idle_ms: float) -> bool:
    """Every frame request has finished, the last one `idle_ms` ago."""
    frames = line.of("frame")
    ends = [r.end for r in frames]
    if not frames or None in ends:
        return False
    return time.time() * 1000 - max(e for e in ends if e is not None) > idle_ms


def _throttle(cdp: Any, mbit: float, latency_ms: float) -> None:
    rate = mbit * 1e6 / 8
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": latency_ms,
            "downloadThroughput": rate,
            "uploadThroughput": rate,
        },
    )


def open_study(context: Any, url: str, mbit: float, latency_ms: float) -> Sample:
    """Open `url` with the network throttled; wait until the frames have settled."""
    page = context.new_page()
    try:
        cdp = context.new_cdp_session(page)
        _throttle(cdp, mbit, latency_ms)
        line = Timeline()
        line.watch(cdp)
        console: list[str] = []
        page.on(
            "console",
            lambda m: (
                console.append(f"{m.type}: {m.text[:300]}")
                if m.type in ("warning", "error")
                else None
            ),
        )
        page.add_init_script(WATCH)
        start = time.time() * 1000
        page.goto(url)
        deadline = time.monotonic() + 120
        while not (_settled(line, 1500) and _drawn(page)):
            if time.monotonic() > deadline:
                requested = len(line.of("frame"))
                raise RuntimeError(f"frames did not settle at {url}: {requested} requests")
            page.wait_for_timeout(200)
        page.wait_for_timeout(500)
        draws = _drawn(page)
        frames = line.of("frame")
        shown = page.evaluate(SHOWN) or frames[0].url
        if not line.frame_requests(shown):
            raise RuntimeError(f"the shown image {shown} was never requested")
        renders = page.evaluate("window.__renders")
        mine = [r for r in renders if str(r["id"]).removeprefix("wadors:") == shown]
        # the first render of the shown image, at any quality; then at full resolution (8)
        first = mine[0]["t"] if mine else draws[0]["t"]
        finals = [r["t"] for r in mine if r["q"] == FULL_RESOLUTION]
        done = max(r.end or 0.0 for r in line.frame_requests(shown))
        full = finals[0] if finals else max(draws[-1]["t"], done)
        marks = milestones(line, shown, start, first)
        return Sample(
            (first - start) / 1000,
            decoded_from(line, shown, mine[0]) if mine else line.bytes_until(shown, first),
            (full - start) / 1000,
            line.bytes_until(shown, full),
            len(frames),
            marks.paint - marks.frame_request,
            sum(r.body for r in frames),
            marks,
            line.dump(start),
            [{**d, "t": round(d["t"] - start, 1)} for d in page.evaluate("window.__draws")],
            [{**d, "t": round(d["t"] - start, 1)} for d in renders],
            console,
            start,
            shown,
        )
    finally:
        page.close()
