"""Headless Debian Chromium driven by Playwright, as `make browser-deps` installs it; a
missing browser or viewer fails the test that needs it (`make test` installs both)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from hounsfield.settings import Settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
VIEWER = Path(Settings.model_fields["viewer_dir"].default)
# WebGL in a headless browser with no GPU (OHIF draws with it): SwiftShader through ANGLE.
WEBGL = [
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
]


@contextmanager
def chromium(webgl: bool = False) -> Iterator[Browser]:
    """A headless Chromium (running as root needs --no-sandbox), closed after the block."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run `make browser-deps`")
    with sync_playwright() as driver:
        args = ["--no-sandbox", *(WEBGL if webgl else [])]
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()


def require_viewer() -> None:
    """Fail unless OHIF is installed where the node serves it from."""
    if not (VIEWER / "index.html").is_file():
        pytest.fail(f"OHIF is not installed in {VIEWER}: run `make viewer`")
