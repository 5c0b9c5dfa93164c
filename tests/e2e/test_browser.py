"""The web chat in headless Chromium (Debian's package) driven by Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = (
        os.environ.get("AMANAH_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not path:
        pytest.fail("Chromium not found: ./scripts/test installs Debian's chromium package")
    return path


@pytest.fixture
def page(tmp_path: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        context = browser.new_context(locale="en-US")
        pg = context.new_page()
        yield pg
        context.close()
        browser.close()


def test_log_in_and_chat_in_english_and_arabic(live_server: LiveServer, page: object, tmp_path: Path) -> None:
    """A customer logs in, asks in English, then in Arabic, and the page turns right-to-left."""
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.goto(live_server.url + "/")
    expect(page).to_have_url(live_server.url + "/login")
    expect(page.locator("#demo-credentials")).to_contain_text("layla")
    page.fill("#username", "layla")
    page.fill("#password", "demo-layla-2026")
    page.click("#login-submit")
    expect(page).to_have_url(live_server.url + "/")

    page.fill("#message", "what's in my savings?")
    page.press("#message", "Enter")
    reply = page.locator("li.msg.bot").last
    expect(reply).to_contain_text("Savings account")
    expect(page.locator("html")).to_have_attribute("dir", "ltr")

    page.fill("#message", "كم رصيدي؟")
    page.press("#message", "Enter")
    expect(page.locator("li.msg.bot")).to_have_count(2)
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("li.msg.bot").last).to_have_attribute("dir", "rtl")
    page.screenshot(path=str(tmp_path / "chat.png"))

    page.locator(".suggestions button").first.click()
    expect(page.locator("li.msg.bot")).to_have_count(3)


def test_wrong_password_shows_an_error(live_server: LiveServer, page: object) -> None:
    """A wrong password shows a clear error on the login page."""
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.goto(live_server.url + "/login")
    page.fill("#username", "layla")
    page.fill("#password", "wrong")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_be_visible()
