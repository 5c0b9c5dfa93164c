"""The secure-link pages over HTTP (ASGI app on a seeded database, every backend)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient

from amanah.adapters.clock import FixedClock
from amanah.app.commands import InboundMessage
from amanah.bootstrap import Container, build
from amanah.domain.conversation import Channel
from amanah.entrypoints.asgi import create_app
from amanah.settings import Settings
from tests.conftest import DEMO_ANCHOR

PASSWORDS = {"layla": "demo-layla-2026", "omar": "demo-omar-2026", "sara": "demo-sara-2026"}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(DEMO_ANCHOR.year, DEMO_ANCHOR.month, DEMO_ANCHOR.day, 10, tzinfo=UTC))


@pytest.fixture
def client(seeded_url: str, clock: FixedClock) -> Iterator[TestClient]:
    settings = Settings(
        database_url=seeded_url, run_worker_in_server=False, public_base_url="https://bank.example"
    )
    container = build(settings, clock=clock)
    with TestClient(create_app(container), base_url="https://bank.example") as c:
        yield c
    if container.engine is not None:
        container.engine.dispose()


def container_of(client: TestClient) -> Container:
    return client.app.state.container  # type: ignore[attr-defined,no-any-return]


def login(client: TestClient, username: str, next_url: str = "/") -> str:
    r = client.post(
        "/login",
        data={"username": username, "password": PASSWORDS[username], "next": next_url},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


def platform_reply_link(
    client: TestClient, username: str, text: str, channel: Channel = Channel.MESSENGER
) -> str:
    """Ask on a platform as a linked customer; return the path of the secure link the guard added."""
    c = container_of(client)
    customer = c.core.customer_by_username(username)
    reply = c.assistant.handle(InboundMessage(channel, f"psid-{username}", text, customer_id=customer.id))
    prepared = c.guard.prepare(channel, customer.id, reply)
    c.guard.record(
        None,
        prepared=prepared,
        user_id=f"psid-{username}",
        body=prepared.rendered.text.encode(),
        at=c.clock.now(),
    )
    url = prepared.rendered.buttons[-1].url
    assert url.startswith("https://bank.example/secure/")
    return url.removeprefix("https://bank.example")


def test_a_secure_link_needs_login_then_shows_the_withheld_content_once(client: TestClient) -> None:
    """Anonymous -> login with next -> back to the page, which shows the IBANs; a reload is refused."""
    path = platform_reply_link(client, "layla", "what's my balance?")
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith("/login?next=") and unquote(location.split("next=")[1].split("&")[0]) == path
    assert login(client, "layla", path) == path
    page = client.get(path)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    c = container_of(client)
    layla = c.core.customer_by_username("layla")
    for account in c.core.accounts(layla.id):
        assert account.iban in page.text.replace(" ", "")
    assert "Facebook Messenger" in page.text
    again = client.get(path)
    assert again.status_code == 404
    assert "can't be opened" in again.text
    for account in c.core.accounts(layla.id):
        assert account.iban[-6:] not in again.text.replace(" ", "")


def test_another_customer_gets_the_same_refusal_and_cannot_burn_the_link(client: TestClient) -> None:
    """Omar, logged in, cannot open Layla's link; Layla still can afterwards."""
    path = platform_reply_link(client, "layla", "show my last 3 transactions")
    login(client, "omar")
    refused = client.get(path)
    assert refused.status_code == 404 and "can't be opened" in refused.text
    c = container_of(client)
    layla = c.core.customer_by_username("layla")
    assert all(a.iban[-6:] not in refused.text.replace(" ", "") for a in c.core.accounts(layla.id))
    client.post("/logout")
    login(client, "layla")
    assert client.get(path).status_code == 200


def test_an_expired_link_is_refused(client: TestClient, clock: FixedClock) -> None:
    """After secure_link_ttl_s (10 minutes by default) the link shows the error page."""
    path = platform_reply_link(client, "sara", "what's my balance?", Channel.WHATSAPP)
    login(client, "sara")
    clock.advance(container_of(client).settings.secure_link_ttl_s)
    assert client.get(path).status_code == 404


def test_a_made_up_token_gets_the_same_page(client: TestClient) -> None:
    """Unknown tokens are indistinguishable from used or expired ones."""
    login(client, "layla")
    r = client.get("/secure/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert r.status_code == 404 and "can't be opened" in r.text


def test_the_privacy_report_link_shows_what_messenger_received(client: TestClient) -> None:
    """'What does Messenger know about me?' links to a report built from the ledger."""
    platform_reply_link(client, "layla", "what's my balance?")
    platform_reply_link(client, "layla", "show my last 3 transactions")
    path = platform_reply_link(client, "layla", "what does Messenger know about me?")
    login(client, "layla")
    page = client.get(path)
    assert page.status_code == 200
    assert "Your privacy report" in page.text and "Facebook Messenger" in page.text
    assert "Balances" in page.text and "Transactions" in page.text
    assert "withheld: sent as a secure link" in page.text
    assert "meta-messenger@2026-11-01" in page.text


def test_the_privacy_page_on_the_banks_site_in_arabic(client: TestClient) -> None:
    """/privacy shows the logged-in customer's report in their language, right to left."""
    platform_reply_link(client, "omar", "كم رصيدي؟", Channel.WHATSAPP)
    assert client.get("/privacy", follow_redirects=False).status_code == 303
    login(client, "omar")
    page = client.get("/privacy")
    assert page.status_code == 200
    assert 'dir="rtl"' in page.text and "تقرير الخصوصية" in page.text and "واتساب" in page.text
    empty = client.get("/privacy?channel=messenger")
    assert "لم يُرسل البنك أي رسالة" in empty.text
