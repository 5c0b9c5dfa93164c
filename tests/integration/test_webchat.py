"""The web chat over HTTP, through the ASGI app, on every storage backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from amanah.adapters.clock import FixedClock
from amanah.bootstrap import build
from amanah.entrypoints.asgi import create_app
from amanah.settings import Settings
from tests.conftest import DEMO_ANCHOR


@pytest.fixture
def client(seeded_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=seeded_url, run_worker_in_server=False)
    clock = FixedClock(datetime(DEMO_ANCHOR.year, DEMO_ANCHOR.month, DEMO_ANCHOR.day, 10, tzinfo=UTC))
    container = build(settings, clock=clock)
    with TestClient(create_app(container)) as c:
        yield c
    if container.engine is not None:
        container.engine.dispose()


def login(client: TestClient, username: str = "layla", password: str = "demo-layla-2026") -> None:
    r = client.post("/login", data={"username": username, "password": password}, follow_redirects=False)
    assert r.status_code == 303, r.text


def test_root_redirects_to_login_and_login_page_shows_demo_customers(client: TestClient) -> None:
    """An anonymous visitor is sent to the login page, which lists the demo credentials."""
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    page = client.get("/login").text
    for name in ("layla", "omar", "sara", "demo-layla-2026"):
        assert name in page


def test_wrong_password_is_refused(client: TestClient) -> None:
    """A wrong password gets 401 and the login page again, with no session."""
    r = client.post("/login", data={"username": "layla", "password": "nope"}, follow_redirects=False)
    assert r.status_code == 401
    assert "Wrong username or password" in r.text
    assert client.post("/api/chat", json={"text": "balance"}).status_code == 401


def test_unknown_customer_cannot_log_in(client: TestClient) -> None:
    """An unknown username is refused like a wrong password."""
    r = client.post("/login", data={"username": "mallory", "password": "x"}, follow_redirects=False)
    assert r.status_code == 401


def test_balance_over_http_matches_the_core(client: TestClient) -> None:
    """The logged-in customer sees their own IBANs in the reply on the bank's channel."""
    login(client)
    r = client.post("/api/chat", json={"text": "what's my balance?"})
    assert r.status_code == 200
    reply = r.json()["reply"]
    container = client.app.state.container  # type: ignore[attr-defined]
    customer = container.core.customer_by_username("layla")
    for account in container.core.accounts(customer.id):
        assert account.iban in reply["text"].replace(" ", "")
    assert reply["dir"] == "ltr"


def test_arabic_message_gets_arabic_rtl_reply(client: TestClient) -> None:
    """An Arabic message is answered in Arabic with direction rtl."""
    login(client, "omar", "demo-omar-2026")
    reply = client.post("/api/chat", json={"text": "كم رصيدي؟"}).json()["reply"]
    assert reply["lang"] == "ar" and reply["dir"] == "rtl"
    assert "رصيد" in reply["text"] or "أرصدتك" in reply["text"]


def test_history_returns_stored_turns(client: TestClient) -> None:
    """The chat history endpoint returns the stored turns of this customer only."""
    login(client)
    client.post("/api/chat", json={"text": "hello"})
    turns = client.get("/api/history").json()["turns"]
    assert turns and turns[-1]["text"] == "hello"


def test_empty_message_gets_a_polite_reply(client: TestClient) -> None:
    """An empty message is answered politely, not with an error."""
    login(client)
    r = client.post("/api/chat", json={"text": "   "})
    assert r.status_code == 200
    assert "didn't get a message" in r.json()["reply"]["text"]


def test_too_long_message_is_413(client: TestClient) -> None:
    """A message over the size limit gets 413 with a clear error."""
    login(client)
    r = client.post("/api/chat", json={"text": "a" * 5000})
    assert r.status_code == 413
    assert r.json()["error"] == "message_too_long"


def test_malformed_json_is_422_not_500(client: TestClient) -> None:
    """Malformed JSON gets a 4xx with a clear error and no traceback."""
    login(client)
    r = client.post("/api/chat", content=b'{"text": ', headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "Traceback" not in r.text
    assert r.json()["error"] == "invalid_request"


def test_wrong_type_is_422(client: TestClient) -> None:
    """A JSON body of the wrong shape gets 422."""
    login(client)
    assert client.post("/api/chat", json={"text": 42}).status_code == 422
    assert client.post("/api/chat", json=["text"]).status_code == 422


def test_oversized_body_is_413(client: TestClient) -> None:
    """A request body over 1 MiB is refused with 413 before it is read."""
    login(client)
    r = client.post(
        "/api/chat", content=b"x" * (1024 * 1024 + 1), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_login_next_is_never_an_open_redirect(client: TestClient) -> None:
    """After login only same-site relative paths are followed."""
    r = client.post(
        "/login",
        data={"username": "sara", "password": "demo-sara-2026", "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_logout_ends_the_session(client: TestClient) -> None:
    """After logout the chat API refuses the old session."""
    login(client)
    client.post("/logout")
    assert client.post("/api/chat", json={"text": "balance"}).status_code == 401


def test_health_and_metrics(client: TestClient) -> None:
    """Health answers ok and metrics are in Prometheus text format."""
    assert client.get("/healthz").json()["status"] == "ok"
    assert "python_info" in client.get("/metrics").text


def test_chunked_oversized_body_is_413(client: TestClient) -> None:
    """A body over the limit sent without Content-Length (chunked) is still refused with 413."""
    login(client)

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(17):
            yield b"x" * 65536

    r = client.post("/api/chat", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
