"""Linking Messenger from its webview (web, desktop): signed_request -> login -> consent -> binding (E6).

The real app over HTTP on every storage backend; signed_requests are made the way Meta makes them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer

from amanah.adapters.channels.meta import sign_request
from amanah.adapters.clock import FixedClock
from amanah.bootstrap import build
from amanah.domain.conversation import Channel
from amanah.domain.linking import ConsentMethod
from amanah.entrypoints.asgi import create_app
from amanah.entrypoints.web.link import CONTEXT_COOKIE
from amanah.settings import DEV_SESSION_SECRET, Settings
from tests.conftest import DEMO_ANCHOR
from tests.integration.test_linking_web import Bank, _accept, _values

SECRET = "test-app-secret-not-real"
OLD_SECRET = "old-app-secret-not-real"
PAGE = "1000000000000001"
PSID = "2000000000000002"
ENTRY, CONSENT = "/link/messenger/context", "/link/messenger/context/consent"
NOW = datetime(DEMO_ANCHOR.year, DEMO_ANCHOR.month, DEMO_ANCHOR.day, 10, tzinfo=UTC)
ROTATION_UNTIL = NOW + timedelta(hours=1)
# docs/messenger-platform.md §2.9 (composed; secret test-app-secret-not-real, issued_at 1767225600)
SPEC_VECTOR = (
    "9oMF-enrIYfMxLtv6P6f6rBEJ9p5tbafFd1CsXWs7jU.eyJhbGdvcml0aG0iOiJITUFDLVNIQTI1NiIsImlzc3VlZF9hdCI6MTc2N"
    "zIyNTYwMCwicGFnZV9pZCI6IjEwMDAwMDAwMDAwMDAwMDEiLCJwc2lkIjoiMjAwMDAwMDAwMDAwMDAwMiIsInRocmVhZF90eXBlIjo"
    "iVVNFUl9UT19QQUdFIiwidGlkIjoiMjAwMDAwMDAwMDAwMDAwMiJ9"
)


def _make_bank(seeded_url: str, **extra: Any) -> Iterator[Bank]:
    values: dict[str, Any] = {
        "database_url": seeded_url,
        "run_worker_in_server": False,
        "messenger_app_secret": SECRET,
        "messenger_page_id": PAGE,
        "messenger_app_id": "555000111",
        **extra,
    }
    clock = FixedClock(NOW)
    container = build(Settings(**values), clock=clock)
    with TestClient(create_app(container)) as client:
        yield Bank(client, container, clock)
    if container.engine is not None:
        container.engine.dispose()


@pytest.fixture
def bank(seeded_url: str) -> Iterator[Bank]:
    """The bank with Messenger configured: app secret, Page id and app id."""
    yield from _make_bank(seeded_url)


@pytest.fixture
def rotating(seeded_url: str) -> Iterator[Bank]:
    """The bank during an app secret rotation: the previous secret works until NOW + 1 h."""
    yield from _make_bank(
        seeded_url,
        messenger_app_secret_previous=OLD_SECRET,
        messenger_app_secret_previous_until=ROTATION_UNTIL,
    )


def signed(bank: Bank, *, psid: str = PSID, age_s: int = 5, secret: str = SECRET, **fields: Any) -> str:
    payload = {
        "algorithm": "HMAC-SHA256",
        "issued_at": int(bank.clock.now().timestamp()) - age_s,
        "page_id": PAGE,
        "psid": psid,
        "thread_type": "USER_TO_PAGE",
        "tid": psid,
        **fields,
    }
    return sign_request(payload, secret)


def post_context(bank: Bank, signed_request: str, **extra: str) -> httpx.Response:
    response: httpx.Response = bank.client.post(
        ENTRY, data={"signed_request": signed_request, **extra}, follow_redirects=False
    )
    return response


def nothing_bound(bank: Bank, username: str = "omar") -> bool:
    return (
        bank.linking.binding(Channel.MESSENGER, PSID) is None
        and bank.linking.consents(bank.customer_id(username)) == []
    )


# -- the entry page ------------------------------------------------------------------------------


def test_entry_page_may_be_framed_only_by_messenger_and_runs_the_banks_own_script(bank: Bank) -> None:
    """The webview page: frameable by messenger.com/facebook.com only, our own script, the SDK origin allowed."""
    page = bank.client.get(ENTRY)
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors https://www.messenger.com https://www.facebook.com;" in csp
    assert "script-src 'self' https://connect.facebook.net;" in csp and "'unsafe-inline'" not in csp
    assert page.headers["x-frame-options"] != "DENY"
    assert '<script src="/static/link_context.js" defer></script>' in page.text
    assert 'data-app-id="555000111"' in page.text
    assert 'data-sdk="https://connect.facebook.net/en_US/messenger.Extensions.js"' in page.text
    assert 'name="signed_request"' in page.text and "disabled" in page.text
    script = bank.client.get("/static/link_context.js")
    assert script.status_code == 200 and "getContext" in script.text and "signed_request" in script.text


def test_entry_page_loads_no_sdk_unless_messenger_is_configured(seeded_url: str) -> None:
    """Without AMANAH_MESSENGER_APP_ID no third-party script is named anywhere on the page."""
    for unconfigured in _make_bank(seeded_url, messenger_app_id=""):
        page = unconfigured.client.get(ENTRY, params={"lang": "ar"})
        assert page.status_code == 200
        assert "connect.facebook.net" not in page.text + page.headers["content-security-policy"]
        assert "script-src 'self';" in page.headers["content-security-policy"]
        assert 'dir="rtl"' in page.text and "ربط فيسبوك ماسنجر" in page.text


def test_other_pages_still_refuse_every_frame(bank: Bank) -> None:
    """Only the entry page is frameable: the consent page after it still says DENY."""
    bank.login("omar")
    post_context(bank, signed(bank))
    consent = bank.client.get(CONSENT)
    assert consent.status_code == 200
    assert consent.headers["x-frame-options"] == "DENY"
    assert consent.headers["content-security-policy"] == "frame-ancestors 'none'"


# -- the whole flow ------------------------------------------------------------------------------


def test_signed_request_then_login_then_accept_binds_the_psid(bank: Bank) -> None:
    """E6: a valid signed_request, then login and consent, binds the PSID; the consent record says how."""
    assert not _values(bank.say(Channel.MESSENGER, PSID, "what is my balance"))
    verified = post_context(bank, signed(bank))
    assert verified.status_code == 303 and verified.headers["location"] == CONSENT + "?lang=en"
    cookie = verified.headers["set-cookie"]
    assert (
        cookie.startswith(CONTEXT_COOKIE + "=")
        and "HttpOnly" in cookie
        and "Path=/link/messenger/context" in cookie
    )

    to_login = bank.client.get(verified.headers["location"], follow_redirects=False)
    assert to_login.status_code == 303 and to_login.headers["location"].startswith("/login?next=")
    next_url = parse_qs(urlsplit(to_login.headers["location"]).query)["next"][0]
    page = bank.client.get(bank.login("omar", next_url))
    assert page.status_code == 200 and 'action="/link/messenger/context/consent"' in page.text
    assert "Facebook Messenger" in page.text and 'value="accept"' in page.text

    done = _accept(bank, page.text, CONSENT)
    assert done.status_code == 200 and 'id="link-linked"' in done.text
    assert CONTEXT_COOKIE in done.headers["set-cookie"] and "Max-Age=0" in done.headers["set-cookie"]
    binding = bank.linking.binding(Channel.MESSENGER, PSID)
    assert binding is not None and binding.customer_id == bank.customer_id("omar")
    [record] = bank.linking.consents(bank.customer_id("omar"))
    assert record.method is ConsentMethod.MESSENGER_EXTENSIONS and record.active
    assert record.agreement_label == bank.linking.agreement(Channel.MESSENGER).label
    assert _values(bank.say(Channel.MESSENGER, PSID, "what is my balance"))
    again = bank.client.post(CONSENT, data={**_csrf(page.text), "decision": "accept"}, follow_redirects=False)
    assert again.status_code == 410  # the verified PSID was used up


def test_the_spec_test_vector_links_its_psid(bank: Bank) -> None:
    """E6: §2.9's signed_request, posted at a time close to its issued_at, links PSID 2000000000000002."""
    bank.clock.at = datetime.fromtimestamp(1767225600 + 30, UTC)
    bank.login("layla")
    assert post_context(bank, SPEC_VECTOR).status_code == 303
    done = _accept(bank, bank.client.get(CONSENT).text, CONSENT)
    assert done.status_code == 200
    assert bank.linking.customer_for(Channel.MESSENGER, PSID) == bank.customer_id("layla")


def test_declining_binds_nothing_and_forgets_the_psid(bank: Bank) -> None:
    """Declining on the consent page links nothing and the verified PSID cannot be used afterwards."""
    bank.login("omar")
    post_context(bank, signed(bank))
    page = bank.client.get(CONSENT)
    declined = _accept(bank, page.text, CONSENT, decision="decline")
    assert declined.status_code == 200 and 'id="link-declined"' in declined.text
    assert bank.client.get(CONSENT).status_code == 410
    assert _accept(bank, page.text, CONSENT).status_code == 410
    assert nothing_bound(bank)


# -- refused signed_requests ---------------------------------------------------------------------


def _tampered_payload(bank: Bank) -> str:
    good = signed(bank)
    other = signed(bank, psid="2000000000000099").split(".")[1]
    return good.split(".")[0] + "." + other


def _spec_vector_for(psid: str) -> str:
    """§2.9's vector with its MAC kept and the PSID in its payload replaced."""
    mac, payload = SPEC_VECTOR.split(".")
    doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    doc["psid"] = psid
    swapped = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode().rstrip("=")
    return mac + "." + swapped


def _flipped_mac(bank: Bank) -> str:
    good = signed(bank)
    return ("A" if good[0] != "A" else "B") + good[1:]


@pytest.mark.parametrize(
    "make",
    [
        _tampered_payload,
        _flipped_mac,
        lambda bank: signed(bank, secret="third-app-secret-not-real"),
        lambda bank: _spec_vector_for(PSID[:-1] + "9"),
    ],
    ids=["payload-swapped", "mac-flipped", "other-secret", "spec-vector-tampered"],
)
def test_tampered_signed_request_is_refused_and_binds_nothing(bank: Bank, make: Any) -> None:
    """E6: a tampered or foreign-signed signed_request gets a 403 page, no cookie, nothing bound."""
    bank.login("omar")
    refused = post_context(bank, make(bank))
    assert refused.status_code == 403 and 'id="link-problem"' in refused.text
    assert "set-cookie" not in refused.headers or CONTEXT_COOKIE not in refused.headers["set-cookie"]
    assert bank.client.get(CONSENT).status_code == 410
    assert nothing_bound(bank)


@pytest.mark.parametrize(("age_s", "why"), [(301, "stale"), (3600, "stale"), (-61, "future")])
def test_stale_or_future_signed_request_is_refused(bank: Bank, age_s: int, why: str) -> None:
    """E6: issued_at older than 5 minutes, or more than a minute ahead, is refused: 'open it again'."""
    bank.login("omar")
    refused = post_context(bank, signed(bank, age_s=age_s), lang="en")
    assert refused.status_code == 403 and "open it again from the button in Messenger" in refused.text, why
    assert nothing_bound(bank)


def test_a_refusal_speaks_the_users_language(bank: Bank) -> None:
    """E6: a refused signed_request from an Arabic page gets an Arabic, right-to-left page."""
    refused = post_context(bank, signed(bank, age_s=600), lang="ar")
    assert refused.status_code == 403
    assert 'dir="rtl"' in refused.text and "انتهت صلاحية هذه الصفحة" in refused.text


def test_signed_request_for_another_page_is_refused(bank: Bank) -> None:
    """E6: with AMANAH_MESSENGER_PAGE_ID set, a signed_request for another Page is refused."""
    bank.login("omar")
    assert post_context(bank, signed(bank, page_id="1000000000000099")).status_code == 403
    assert nothing_bound(bank)


@pytest.mark.parametrize(
    "garbage",
    ["", "not-a-signed-request", "a.b.c", "é.x", "x" * 5000, "....", "AAAA.AAAA", "%00.%00"],
)
def test_malformed_signed_request_is_a_clear_400(bank: Bank, garbage: str) -> None:
    """E6: malformed input is a 400 page (never a 500 or a traceback), nothing bound."""
    refused = post_context(bank, garbage)
    assert refused.status_code == 400 and 'id="link-problem"' in refused.text
    assert "Traceback" not in refused.text
    assert nothing_bound(bank)


def test_a_cross_site_post_is_refused(bank: Bank) -> None:
    """E6: a signed_request posted from another site (login-CSRF style) is refused before verification."""
    refused = bank.client.post(
        ENTRY,
        data={"signed_request": signed(bank)},
        headers={"Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )
    assert refused.status_code == 403 and CONTEXT_COOKIE not in refused.headers.get("set-cookie", "")


def test_consent_needs_a_verified_context_cookie(bank: Bank) -> None:
    """Without a verified signed_request (no cookie, or one not signed by this bank for this purpose),
    the consent step is 410 and nothing is bound."""
    bank.login("omar")
    assert bank.client.get(CONSENT).status_code == 410
    forgeries = [
        '{"psid":"' + PSID + '"}',
        URLSafeTimedSerializer("another-secret", salt="amanah-link-messenger-context").dumps({"psid": PSID}),
        URLSafeTimedSerializer(DEV_SESSION_SECRET, salt="amanah-link-resume").dumps({"psid": PSID}),
    ]
    for forged in forgeries:
        bank.client.cookies.set(CONTEXT_COOKIE, forged, domain="testserver.local", path=ENTRY)
        assert bank.client.get(CONSENT).status_code == 410
        accepted = bank.client.post(CONSENT, data={"decision": "accept"}, follow_redirects=False)
        assert accepted.status_code == 410
    genuine = URLSafeTimedSerializer(DEV_SESSION_SECRET, salt="amanah-link-messenger-context").dumps(
        {"psid": PSID}
    )
    bank.client.cookies.set(CONTEXT_COOKIE, genuine, domain="testserver.local", path=ENTRY)
    assert bank.client.get(CONSENT).status_code == 200  # the same check lets a genuine cookie through
    assert nothing_bound(bank)


# -- B9 applies here too -------------------------------------------------------------------------


def test_previous_secret_is_accepted_inside_the_window_and_counted(rotating: Bank) -> None:
    """B9/E6: a signed_request made with the previous app secret is accepted until the deadline, and counted."""
    before = _metric(rotating)
    rotating.login("sara")
    assert post_context(rotating, signed(rotating, secret=OLD_SECRET)).status_code == 303
    assert _metric(rotating) == before + 1
    assert post_context(rotating, signed(rotating)).status_code == 303
    assert _metric(rotating) == before + 1
    rotating.clock.at = ROTATION_UNTIL
    assert post_context(rotating, signed(rotating, secret=OLD_SECRET)).status_code == 403


def _metric(bank: Bank) -> float:
    wanted = 'amanah_app_secret_previous_used_total{channel="messenger",use="signed_request"}'
    for line in bank.client.get("/metrics").text.splitlines():
        if line.startswith(wanted):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _csrf(html: str) -> dict[str, str]:
    import re

    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return {"csrf": found.group(1)}
