"""The web chat over HTTP, through the ASGI app, on every storage backend."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from amanah.adapters.clock import FixedClock
from amanah.adapters.storage.schema_web import login_failures
from amanah.bootstrap import build
from amanah.entrypoints.asgi import create_app
from amanah.entrypoints.web.headers import SecurityHeaders
from amanah.settings import Settings
from tests.conftest import DEMO_ANCHOR

COOKIE = "amanah_session"


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


def _replay(client: TestClient, cookie: str) -> int:
    """Status of a chat request carrying exactly this session cookie (as an attacker's copy would)."""
    client.cookies.clear()
    client.cookies.set(COOKIE, cookie, domain="testserver.local")
    status: int = client.post("/api/chat", json={"text": "balance"}).status_code
    return status


def test_logout_ends_the_session(client: TestClient) -> None:
    """After logout the old session cookie, replayed, is refused: the session ended on the server."""
    login(client)
    old = client.cookies[COOKIE]
    assert client.post("/api/chat", json={"text": "balance"}).status_code == 200
    assert client.post("/logout", follow_redirects=False).status_code == 303
    assert client.post("/api/chat", json={"text": "balance"}).status_code == 401
    assert _replay(client, old) == 401
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_the_cookie_carries_only_an_opaque_token(client: TestClient) -> None:
    """A cookie signed with the secret but naming a customer id (the old format) is no session."""
    from itsdangerous import TimestampSigner

    secret = client.app.state.container.settings.session_secret.get_secret_value()  # type: ignore[attr-defined]
    forged = TimestampSigner(secret).sign(base64.b64encode(json.dumps({"customer_id": 1}).encode())).decode()
    assert _replay(client, forged) == 401
    login(client)
    payload = json.loads(base64.b64decode(client.cookies[COOKIE].split(".")[0]))
    assert set(payload) == {"sid"} and len(payload["sid"]) == 43
    assert "layla" not in json.dumps(payload)


def test_each_login_starts_a_new_session(client: TestClient) -> None:
    """Logging in again gives a new token and ends the previous one (no session fixation)."""
    login(client)
    first = client.cookies[COOKIE]
    login(client, "omar", "demo-omar-2026")
    second = client.cookies[COOKIE]
    assert first != second
    assert client.post("/api/chat", json={"text": "balance"}).status_code == 200
    assert _replay(client, first) == 401
    assert _replay(client, second) == 200


def test_sessions_end_when_idle_and_after_their_absolute_lifetime(client: TestClient) -> None:
    """No request for the idle timeout ends a session; so does the absolute lifetime, even if active."""
    container = client.app.state.container  # type: ignore[attr-defined]
    clock, settings = container.clock, container.settings
    login(client)
    clock.advance(settings.session_max_age_s - 60)
    assert client.post("/api/chat", json={"text": "hi"}).status_code == 200  # activity keeps it alive
    clock.advance(settings.session_max_age_s - 60)
    assert client.post("/api/chat", json={"text": "hi"}).status_code == 200
    clock.advance(settings.session_max_age_s)
    assert client.post("/api/chat", json={"text": "hi"}).status_code == 401

    login(client)
    step = settings.session_max_age_s // 2
    for _ in range(settings.session_absolute_s // step - 1):
        clock.advance(step)
        assert client.get("/api/history").status_code == 200
    clock.advance(step)
    assert client.get("/api/history").status_code == 401


# -- login throttling and cross-site login ----------------------------------------------------------


def _try(client: TestClient, username: str, password: str, **headers: str) -> httpx.Response:
    response: httpx.Response = client.post(
        "/login", data={"username": username, "password": password}, headers=headers, follow_redirects=False
    )
    return response


def test_five_failures_for_a_username_pause_its_logins(client: TestClient) -> None:
    """After 5 wrong passwords in 15 minutes even the right one gets 429 until the window has room."""
    clock = client.app.state.container.clock  # type: ignore[attr-defined]
    for _ in range(5):
        assert _try(client, "layla", "wrong").status_code == 401
    paused = _try(client, "Layla ", "demo-layla-2026")
    assert paused.status_code == 429
    assert "Too many failed attempts" in paused.text and 'id="login-error"' in paused.text
    assert 0 < int(paused.headers["retry-after"]) <= 15 * 60
    assert _try(client, "sara", "demo-sara-2026").status_code == 303  # other customers are not paused
    clock.advance(15 * 60)
    assert _try(client, "layla", "demo-layla-2026").status_code == 303


def test_arabic_login_page_explains_the_pause(client: TestClient) -> None:
    """The pause message is in the page's language."""
    for _ in range(5):
        client.post("/login", data={"username": "omar", "password": "x", "lang": "ar"})
    r = client.post("/login", data={"username": "omar", "password": "x", "lang": "ar"})
    assert r.status_code == 429 and "محاولات فاشلة كثيرة" in r.text


def test_many_failures_from_one_address_pause_it_for_every_username(client: TestClient) -> None:
    """Guessing across many usernames from one address is paused too (20 failures per 15 minutes)."""
    for i in range(20):
        assert _try(client, f"user{i}", "wrong").status_code == 401
    assert _try(client, "sara", "demo-sara-2026").status_code == 429


def test_failures_are_counted_in_the_database_for_every_process(client: TestClient) -> None:
    """A second server process on the same database sees the failures (and stores no typed secret)."""
    container = client.app.state.container  # type: ignore[attr-defined]
    for _ in range(5):
        _try(client, "layla", "pw-typed-as-username")
    other = build(container.settings, clock=container.clock)
    assert other.engine is not None
    try:
        with TestClient(create_app(other)) as second:
            assert _try(second, "layla", "demo-layla-2026").status_code == 429
        with other.engine.connect() as conn:
            rows = conn.execute(select(login_failures)).all()
        assert rows and all("layla" not in str(tuple(r)) for r in rows)
    finally:
        other.engine.dispose()


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}],
)
def test_a_cross_site_login_post_is_refused(client: TestClient, headers: dict[str, str]) -> None:
    """Login CSRF: a login form posted from another site logs nobody in."""
    r = _try(client, "layla", "demo-layla-2026", **headers)
    assert r.status_code == 403 and "could not be verified" in r.text
    assert COOKIE not in client.cookies or client.post("/api/chat", json={"text": "x"}).status_code == 401


def test_a_same_origin_or_originless_login_post_is_accepted(client: TestClient) -> None:
    """The bank's own login form (same Origin) and non-browser clients (no Origin) log in."""
    assert _try(client, "layla", "demo-layla-2026", Origin="http://testserver").status_code == 303
    assert _try(client, "layla", "demo-layla-2026", **{"Sec-Fetch-Site": "same-origin"}).status_code == 303
    assert _try(client, "layla", "demo-layla-2026").status_code == 303


def test_our_no_referrer_pages_can_still_log_in(client: TestClient) -> None:
    """Our pages' no-referrer policy makes browsers send Origin: null: Sec-Fetch-Site or the login
    form's CSRF token vouches for them; a null origin with neither (a sandboxed frame) is refused."""
    null = {"Origin": "null"}
    modern = _try(client, "layla", "demo-layla-2026", **null, **{"Sec-Fetch-Site": "same-origin"})
    assert modern.status_code == 303
    client.post("/logout")
    assert _try(client, "layla", "demo-layla-2026", **null).status_code == 403
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    legacy = client.post(
        "/login",
        data={"username": "layla", "password": "demo-layla-2026", "csrf": csrf[1]},
        headers=null,
        follow_redirects=False,
    )
    assert legacy.status_code == 303
    assert client.post("/api/chat", json={"text": "hi"}).status_code == 200


# -- browser-hardening headers ----------------------------------------------------------------------


def test_every_page_has_anti_framing_and_hardening_headers(seeded_url: str) -> None:
    """Login, chat, JSON and error responses all carry the anti-framing, referrer and nosniff headers."""
    settings = Settings(database_url=seeded_url, run_worker_in_server=False)
    container = build(settings)
    app = create_app(container)
    if SecurityHeaders not in [getattr(m, "cls", None) for m in app.user_middleware]:  # until asgi.py has it
        app.add_middleware(SecurityHeaders)
    try:
        with TestClient(app) as c:
            responses = [c.get("/login"), c.get("/healthz"), c.get("/nope")]
            login(c)
            responses += [c.get("/"), c.post("/api/chat", json={"text": "hi"})]
    finally:
        container.engine.dispose()  # type: ignore[union-attr]
    for r in responses:
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"


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
