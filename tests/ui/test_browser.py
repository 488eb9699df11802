"""The admin pages in headless Chromium (through Playwright) against a live node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from hounsfield.archive.context import Archive
from hounsfield.archive.study_files import study_pk
from hounsfield.rules.model import Rule
from hounsfield.rules.saved import remove_rule, save_rule
from hounsfield.scheduled import lock
from hounsfield.scheduled.scheduler import ensure_services
from hounsfield.sites.devices import Device, add_device
from hounsfield.workqueue import admin
from tests.browser import chromium
from tests.conftest import make_archive, make_settings
from tests.dcmtk import StoreSCP
from tests.storage_helpers import store_variant
from tests.ui.helpers import failed_item
from tests.ui.live import serving

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium, as installed by `make browser-deps`."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Archive, str]]:
    """An archive on SQLite and the base URL of its HTTP server."""
    archive = make_archive(make_settings(tmp_path, f"sqlite:///{tmp_path / 'index.db'}"))
    try:
        with serving(archive) as url:
            yield archive, url
    finally:
        archive.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page that fails the test on any script error."""
    context = browser.new_context()
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.set_default_timeout(15_000)
    yield opened
    context.close()
    assert not errors, errors


def test_retry_disable_and_echo(node: tuple[Archive, str], page: Page, tmp_path: Path) -> None:
    archive, url = node
    pk = failed_item(archive, "association rejected")
    ensure_services(archive)
    peer = StoreSCP(tmp_path / "peer", ae_title="PEERSCP")
    add_device(archive, Device("PEERSCP", "127.0.0.1", peer.port, "a DCMTK storescp"))
    try:
        page.goto(f"{url}/ui/queue")
        assert page.evaluate("typeof htmx") == "object", "htmx is missing: run make ui-assets"
        row = page.locator(f"#item-{pk}")
        expect(row.locator("td.status")).to_have_text("failed")
        row.get_by_role("button", name="Retry").click()
        expect(page.locator(f"#item-{pk} td.status")).to_have_text("pending")
        assert admin.get_item(archive.engine, pk).status == "pending"

        page.get_by_role("link", name="Services").click()
        service = page.locator("#service-purge-work-items")
        expect(service.locator("td.state")).to_have_text("enabled")
        service.get_by_role("button", name="Disable").click()
        expect(page.locator("#service-purge-work-items td.state")).to_have_text("disabled")
        expect(page.locator("#service-purge-work-items").get_by_role("button", name="Enable"))
        assert not lock.get_service(archive.engine, "purge-work-items").enabled

        page.get_by_role("link", name="Devices").click()
        device = page.locator("#device-PEERSCP")
        device.get_by_role("button", name="Echo").click()
        expect(device.locator("td.echo")).to_contain_text("PEERSCP at 127.0.0.1")
        expect(device.locator("td.echo")).to_contain_text("success in")

        save_rule(archive.engine, Rule("keep-a-week", "delete", after_seconds=7 * 86400))
        page.get_by_role("link", name="Rules").click()
        remove_rule(archive.engine, "keep-a-week")  # meanwhile, elsewhere
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#rule-keep-a-week").get_by_role("button", name="Remove").click()
        expect(page.locator("#flash")).to_have_text("no rule named 'keep-a-week'")
    finally:
        peer.stop()


def test_delete_study_after_confirming(node: tuple[Archive, str], page: Page) -> None:
    archive, url = node
    stored = store_variant(archive, "CT_small.dcm", 7)
    kept = store_variant(archive, "MR_small.dcm", 8)
    asked: list[str] = []

    def confirm(dialog: object) -> None:
        asked.append(dialog.message)  # type: ignore[attr-defined]
        dialog.accept()  # type: ignore[attr-defined]

    page.on("dialog", confirm)
    page.goto(f"{url}/ui/studies")
    page.get_by_label("Patient ID").fill("CT_small.dcm/7")
    page.get_by_role("button", name="Search").click()
    page.locator("#results a").first.click()
    expect(page.locator("h1")).to_contain_text("Study")
    expect(page.locator("dl.facts")).to_contain_text(stored.study)

    page.get_by_role("button", name="Delete study").click()
    page.wait_for_url("**/ui/studies?**")
    expect(page.locator("#flash")).to_contain_text(f"deleted study {stored.study}")
    assert asked and "cannot be undone" in asked[0]
    part = archive.partition()
    with pytest.raises(Exception, match="no study"):
        study_pk(archive, part, stored.study)
    assert study_pk(archive, part, kept.study)
