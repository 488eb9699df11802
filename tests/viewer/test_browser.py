"""OHIF in headless Chromium against a live node holding real studies: the study list, a CT,
and the MONOCHROME1 radiographs (15 bits stored, Pixel Spacing 0\\0) that used to stay black."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from hounsfield.archive.store import store
from hounsfield.catalog import partitions
from hounsfield.storage.filemeta import split_part10
from hounsfield.web.app import create_app
from hounsfield.web.viewer.config import study_link
from tests.browser import chromium, require_viewer
from tests.live_http import live
from tests.storage_helpers import part10_variant, store_variant
from tests.viewer.conftest import sqlite_archive

FILES = (
    "CT_small.dcm",
    "RG1_UNCR.dcm",
    "RG1_J2KR.dcm",
    "MR_small.dcm",
    "SC_jpeg_no_color_transform.dcm",  # no Modality: the study list used to fail on it
)
# Mean and spread of an element's pixels (a canvas, or an image drawn onto one), sampled.
PIXELS = """(selector) => {
  const element = document.querySelector(selector);
  if (!element) return null;
  let canvas = element;
  if (element.tagName === 'IMG') {
    if (!element.complete || !element.naturalWidth) return null;
    canvas = document.createElement('canvas');
    canvas.width = element.naturalWidth;
    canvas.height = element.naturalHeight;
    canvas.getContext('2d').drawImage(element, 0, 0);
  }
  if (!canvas.width || !canvas.height) return null;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0, sum = 0, squares = 0;
  for (let i = 0; i < data.length; i += 4 * 7) {
    const v = (data[i] + data[i + 1] + data[i + 2]) / 3;
    n += 1; sum += v; squares += v * v;
  }
  const mean = sum / n;
  return {mean: mean, std: Math.sqrt(Math.max(0, squares / n - mean * mean))};
}"""
VIEWPORT = "canvas.cornerstone-canvas"
CLINIC = "CLINIC2"  # a second partition, with a study of its own
THUMBNAIL = "[data-cy='study-browser-thumbnail'] img"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A live node with one study per test file: its URL and the study UIDs by file name."""
    require_viewer()
    archive = sqlite_archive(tmp_path_factory.mktemp("viewer-node"))
    studies = {name: store_variant(archive, name, n).study for n, name in enumerate(FILES)}
    with archive.engine.begin() as conn:
        partitions.add(conn, CLINIC)
    meta, data = split_part10(part10_variant("CT_small.dcm", 99))
    studies[CLINIC] = store(archive, str(meta.TransferSyntaxUID), data, partition=CLINIC).study
    try:
        with live(create_app(archive)) as url:
            yield url, studies
    finally:
        archive.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright."""
    with chromium(webgl=True) as launched:
        yield launched


@pytest.fixture(scope="module")
def context(browser: Any) -> Iterator[Any]:
    """One browser profile for every page (OHIF's bundles are cached after the first)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    """A fresh tab that records the page's uncaught errors in `page.errors`."""
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    yield tab
    tab.close()


def drawn(page: Any, selector: str, *, brighter_than: float = 0.0) -> dict[str, float]:
    """The pixel statistics of `selector` once it shows a non-uniform image."""
    ready = f"""() => {{
      const stats = ({PIXELS})({selector!r});
      return stats && stats.std > 8 && stats.mean > {brighter_than} ? stats : null;
    }}"""
    try:
        return page.wait_for_function(ready, timeout=30_000, polling=250).json_value()
    except PlaywrightTimeout:
        stats = page.evaluate(PIXELS, selector)
        pytest.fail(f"{selector} stayed blank or dark: {stats}; page errors: {page.errors}")


def test_study_list_shows_every_study(node: tuple[str, dict[str, str]], page: Any) -> None:
    url, _ = node
    page.goto(url + "/")
    rows = page.locator("tbody").last.locator("tr")  # the first body holds the filters
    rows.nth(len(FILES) - 1).wait_for(timeout=30_000)
    assert rows.count() == len(FILES)  # not the other partition's study
    text = rows.all_inner_texts()
    for modality in ("CT", "CR", "MR"):
        assert any(modality in row.split() for row in text), text
    assert page.get_by_text("Data Source Connection Error").count() == 0
    assert page.locator("a[href='/ui/']").count() == 1
    assert page.errors == []


def test_a_ct_study_draws(node: tuple[str, dict[str, str]], page: Any) -> None:
    url, studies = node
    page.goto(url + study_link(studies["CT_small.dcm"]))
    stats = drawn(page, VIEWPORT)
    assert stats["std"] > 8


def test_a_study_of_another_partition_draws(node: tuple[str, dict[str, str]], page: Any) -> None:
    url, studies = node
    page.goto(url + study_link(studies[CLINIC], CLINIC, "HOUNSFIELD"))
    assert drawn(page, VIEWPORT)["std"] > 8


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG1_J2KR.dcm"])
def test_monochrome1_radiograph_is_not_black(
    node: tuple[str, dict[str, str]], page: Any, name: str
) -> None:
    url, studies = node
    page.goto(url + study_link(studies[name]))
    viewport = drawn(page, VIEWPORT, brighter_than=40)
    thumbnail = drawn(page, THUMBNAIL, brighter_than=20)
    assert viewport["mean"] > 40 and thumbnail["mean"] > 20
