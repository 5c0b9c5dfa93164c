"""Linking Messenger from its webview in headless Chromium: the page's script, the frame policy, the flow.

Meta's Messenger Extensions SDK is never fetched: Playwright answers its URL with a stand-in that
hands the page a signed_request made with the test app secret, the way getContext would.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from amanah.adapters.channels.meta import sign_request
from amanah.adapters.storage.db import make_engine
from amanah.adapters.storage.sql_linking import SqlLinkStore
from amanah.domain.conversation import Channel
from amanah.domain.linking import ConsentMethod
from tests.e2e.conftest import LiveServer, start_server
from tests.e2e.test_browser import CHROMIUM_ARGS, chromium_path

pytestmark = pytest.mark.browser

SECRET = "test-app-secret-not-real"
APP_ID = "555000111"
PAGE_ID = "1000000000000001"
PSID = "2000000000000002"
SDK = "https://connect.facebook.net/en_US/messenger.Extensions.js"


@pytest.fixture
def webview_server(seeded_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(
        seeded_url,
        tmp_path,
        AMANAH_MESSENGER_APP_SECRET=SECRET,
        AMANAH_MESSENGER_APP_ID=APP_ID,
        AMANAH_MESSENGER_PAGE_ID=PAGE_ID,
        AMANAH_RUN_WORKER_IN_SERVER="false",
    )
    yield server
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


def fake_sdk(signed_request: str | None) -> str:
    """A stand-in for Meta's SDK: getContext succeeds with ``signed_request``, or fails if None."""
    context = json.dumps(
        {"psid": PSID, "thread_type": "USER_TO_PAGE", "tid": PSID, "signed_request": signed_request}
    )
    ok = "true" if signed_request is not None else "false"
    return (
        "window.MessengerExtensions = {getContext: function (appId, success, error) {"
        f"  if ({ok} && appId === {json.dumps(APP_ID)}) success({context}); else error(2071011);"
        "}};"
        "if (window.extAsyncInit) window.extAsyncInit();"
    )


def fresh_signed_request() -> str:
    payload = {
        "algorithm": "HMAC-SHA256",
        "issued_at": int(time.time()),
        "page_id": PAGE_ID,
        "psid": PSID,
        "thread_type": "USER_TO_PAGE",
        "tid": PSID,
    }
    return sign_request(payload, SECRET)


@pytest.fixture
def browser_context(tmp_path: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # The test server is on loopback while "messenger.com" is public: Chromium's local network
        # access checks would refuse that frame (a bank's real site is public, so they would not).
        args = [*CHROMIUM_ARGS, "--disable-features=LocalNetworkAccessChecks"]
        browser = p.chromium.launch(executable_path=chromium_path(), args=args)
        context = browser.new_context(locale="en-US")
        yield context
        context.close()
        browser.close()


def _binding_method(server: LiveServer) -> ConsentMethod | None:
    engine = make_engine(server.database_url)
    try:
        binding = SqlLinkStore(engine).binding(Channel.MESSENGER, PSID)
        return binding.method if binding is not None else None
    finally:
        engine.dispose()


def test_webview_page_gets_the_signed_request_and_the_customer_links(
    webview_server: LiveServer, browser_context: object
) -> None:
    """E6 end to end: getContext -> Continue -> login -> consent -> linked, with the SDK stood in for."""
    from playwright.sync_api import BrowserContext, expect

    assert isinstance(browser_context, BrowserContext)
    sdk = fresh_signed_request()
    browser_context.route(
        SDK, lambda route: route.fulfill(body=fake_sdk(sdk), content_type="text/javascript")
    )
    page = browser_context.new_page()
    page.goto(webview_server.url + "/link/messenger/context")
    expect(page.locator("#context-continue")).to_be_enabled()
    expect(page.locator("#context-unavailable")).to_be_hidden()
    page.click("#context-continue")
    expect(page.locator("#username")).to_be_visible()
    page.fill("#username", "layla")
    page.fill("#password", "demo-layla-2026")
    page.click("#login-submit")
    expect(page.locator("#consent")).to_be_visible()
    page.click("#accept")
    expect(page.locator("#link-linked")).to_be_visible()
    assert _binding_method(webview_server) is ConsentMethod.MESSENGER_EXTENSIONS


def test_outside_messenger_the_page_says_what_to_do_instead(
    webview_server: LiveServer, browser_context: object
) -> None:
    """When getContext fails (not inside Messenger), the page explains and the button stays disabled."""
    from playwright.sync_api import BrowserContext, expect

    assert isinstance(browser_context, BrowserContext)
    browser_context.route(
        SDK, lambda route: route.fulfill(body=fake_sdk(None), content_type="text/javascript")
    )
    page = browser_context.new_page()
    page.goto(webview_server.url + "/link/messenger/context?lang=ar")
    expect(page.locator("#context-unavailable")).to_be_visible()
    expect(page.locator("#context-continue")).to_be_disabled()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    assert _binding_method(webview_server) is None


def _host_page(target: str) -> str:
    return f'<!doctype html><title>host</title><iframe id="webview" src="{target}" width="600" height="600"></iframe>'


def test_messenger_may_frame_the_page_and_the_flow_continues_in_a_new_tab(
    webview_server: LiveServer, browser_context: object
) -> None:
    """In messenger.com's frame the page works and Continue opens the bank in a new tab; another site
    cannot frame it."""
    from playwright.sync_api import BrowserContext, expect

    assert isinstance(browser_context, BrowserContext)
    sdk = fresh_signed_request()
    target = webview_server.url + "/link/messenger/context"
    browser_context.route(
        SDK, lambda route: route.fulfill(body=fake_sdk(sdk), content_type="text/javascript")
    )
    for origin in ("https://www.messenger.com", "https://evil.example"):
        browser_context.route(
            origin + "/", lambda route: route.fulfill(body=_host_page(target), content_type="text/html")
        )

    host = browser_context.new_page()
    with host.expect_response(target):  # the bank answered; the browser must refuse to show it here
        host.goto("https://evil.example/", wait_until="load")
    frame = host.frame_locator("#webview")
    expect(frame.locator("#context-continue")).to_have_count(0)

    host.goto("https://www.messenger.com/")
    frame = host.frame_locator("#webview")
    expect(frame.locator("#context-continue")).to_be_enabled()
    with browser_context.expect_page() as opened:
        frame.locator("#context-continue").click()
    tab = opened.value
    expect(tab.locator("#username")).to_be_visible()
    tab.fill("#username", "omar")
    tab.fill("#password", "demo-omar-2026")
    tab.click("#login-submit")
    expect(tab.locator("#consent")).to_be_visible()
    tab.click("#accept")
    expect(tab.locator("#link-linked")).to_be_visible()
    assert _binding_method(webview_server) is ConsentMethod.MESSENGER_EXTENSIONS
