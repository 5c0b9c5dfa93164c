"""Linking over HTTP: the bank's link, consent and settings pages, on every storage backend."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

import amanah
from amanah.adapters.clock import FixedClock
from amanah.adapters.privacy.agreements import load_agreements
from amanah.app.commands import InboundMessage
from amanah.app.linking import LinkingService
from amanah.bootstrap import Container, build
from amanah.domain.conversation import Channel
from amanah.domain.linking import ConsentMethod, WithdrawalMethod
from amanah.domain.replies import BalanceValue, Reply
from amanah.entrypoints.asgi import create_app
from amanah.settings import Settings
from tests.conftest import DEMO_ANCHOR

PSID = "2000000000000002"
WA_ID = "15550002222"
ALT = "ARTnbOSmJvH1tZ0xYqPw-test-linking-token"
REDIRECT = "https://www.facebook.com/messenger_platform/account_linking/?account_linking_token=" + ALT
PASSWORDS = {"layla": "demo-layla-2026", "omar": "demo-omar-2026", "sara": "demo-sara-2026"}


@dataclass
class Bank:
    client: TestClient
    container: Container
    clock: FixedClock

    @property
    def linking(self) -> LinkingService:
        assert self.container.linking is not None
        return self.container.linking

    def login(self, username: str, next_url: str = "/") -> str:
        r = self.client.post(
            "/login",
            data={"username": username, "password": PASSWORDS[username], "next": next_url},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        return str(r.headers["location"])

    def customer_id(self, username: str) -> int:
        return self.container.core.customer_by_username(username).id

    def say(self, channel: Channel, user_id: str, text: str) -> Reply:
        """What the channel worker does: look up the binding, then ask the assistant."""
        cid = self.linking.customer_for(channel, user_id)
        return self.container.assistant.handle(InboundMessage(channel, user_id, text, customer_id=cid))


@pytest.fixture
def bank(seeded_url: str) -> Iterator[Bank]:
    settings = Settings(database_url=seeded_url, run_worker_in_server=False)
    clock = FixedClock(datetime(DEMO_ANCHOR.year, DEMO_ANCHOR.month, DEMO_ANCHOR.day, 10, tzinfo=UTC))
    container = build(settings, clock=clock)
    with TestClient(create_app(container)) as client:
        yield Bank(client, container, clock)
    if container.engine is not None:
        container.engine.dispose()


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def _messenger_url(bank: Bank, redirect_uri: str = REDIRECT, psid: str = PSID) -> str:
    """The account_link button's URL as Messenger opens it (our state + Messenger's parameters)."""
    base = _path(bank.linking.messenger_link_url(psid))
    return base + "&" + urlencode({"account_linking_token": ALT, "redirect_uri": redirect_uri})


def _form(html: str) -> dict[str, str]:
    return {m[0]: m[1] for m in re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', html)}


def _unescape(value: str) -> str:
    return value.replace("&amp;", "&").replace("&#34;", '"').replace("&#39;", "'")


def _accept(
    bank: Bank, page_html: str, action: str, decision: str = "accept", **extra: str
) -> httpx.Response:
    fields = {k: _unescape(v) for k, v in _form(page_html).items()}
    fields.update(decision=decision, **extra)
    response: httpx.Response = bank.client.post(action, data=fields, follow_redirects=False)
    return response


def _values(reply: Reply) -> list[BalanceValue]:
    return [v for v in reply.values() if isinstance(v, BalanceValue)]


# -- Messenger ------------------------------------------------------------------------------------


def test_full_messenger_flow_in_arabic(bank: Bank) -> None:
    """Button -> login -> Arabic consent -> accept -> redirect with code -> webhook binds -> balances flow."""
    before = bank.say(Channel.MESSENGER, PSID, "كم رصيدي؟")
    assert not _values(before)
    [button] = before.buttons
    assert bank.linking.is_link_url(button.url)

    url = _messenger_url(bank)
    r = bank.client.get(url, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    next_url = parse_qs(urlsplit(r.headers["location"]).query)["next"][0]
    assert next_url == url
    assert bank.client.get(r.headers["location"]).status_code == 200

    back = bank.login("omar", next_url)
    page = bank.client.get(back)
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    consent = load_agreements()[Channel.MESSENGER].consent["ar"]
    assert 'dir="rtl"' in page.text and consent.title in page.text
    for item in (*consent.will_see, *consent.will_not_see):
        assert item in page.text
    assert "meta-messenger" in page.text and "2026-11-01" in page.text
    assert 'value="accept"' in page.text and 'value="decline"' in page.text

    done = _accept(bank, page.text, "/link/messenger")
    assert done.status_code == 303
    location = done.headers["location"]
    assert location.startswith("https://www.facebook.com/messenger_platform/account_linking/?")
    query = parse_qs(urlsplit(location).query)
    assert query["account_linking_token"] == [ALT]
    [code] = query["authorization_code"]
    assert len(code) >= 22 and str(bank.customer_id("omar")) != code

    binding = bank.linking.complete_messenger(PSID, code, bank.clock.now())
    assert binding is not None and binding.customer_id == bank.customer_id("omar")
    after = bank.say(Channel.MESSENGER, PSID, "كم رصيدي؟")
    assert _values(after)
    [record] = bank.linking.consents(bank.customer_id("omar"))
    assert (
        record.method is ConsentMethod.MESSENGER_ACCOUNT_LINKING and record.agreement_version == "2026-11-01"
    )


def test_reused_authorization_code_is_refused(bank: Bank) -> None:
    """The code from one accept links once; replaying it (any PSID) links nothing more."""
    bank.login("layla")
    page = bank.client.get(_messenger_url(bank))
    code = parse_qs(urlsplit(_accept(bank, page.text, "/link/messenger").headers["location"]).query)[
        "authorization_code"
    ][0]
    assert bank.linking.complete_messenger(PSID, code) is not None
    assert bank.linking.unlink(Channel.MESSENGER, PSID, WithdrawalMethod.PLATFORM)
    assert bank.linking.complete_messenger(PSID, code) is None
    assert bank.linking.complete_messenger("2000000000000077", code) is None
    assert bank.linking.binding(Channel.MESSENGER, PSID) is None


@pytest.mark.parametrize(
    "redirect_uri",
    ["https://evil.example/cb", "http://www.facebook.com/cb", "https://facebook.com.evil.example/cb", ""],
)
def test_bad_or_foreign_redirect_uri_is_a_400(bank: Bank, redirect_uri: str) -> None:
    """A redirect_uri off the allowlist gets a clear 400 page, before and after login, never a redirect."""
    url = _messenger_url(bank, redirect_uri)
    r = bank.client.get(url, follow_redirects=False)
    assert r.status_code == 400 and "not valid" in r.text
    bank.login("layla")
    assert bank.client.get(url, follow_redirects=False).status_code == 400
    good = bank.client.get(_messenger_url(bank))
    forged = _accept(bank, good.text, "/link/messenger", redirect_uri=redirect_uri)
    assert forged.status_code == 400 and "location" not in forged.headers


def test_forged_state_is_a_400(bank: Bank) -> None:
    """A state not signed by the bank (another PSID swapped in) is refused."""
    url = _messenger_url(bank).replace(f"state={PSID}", "state=2000000000000099")
    assert bank.client.get(url, follow_redirects=False).status_code == 400


def test_decline_returns_to_messenger_without_a_code(bank: Bank) -> None:
    """Declining redirects to redirect_uri with no authorization_code and links nothing."""
    bank.login("layla")
    page = bank.client.get(_messenger_url(bank, REDIRECT + "&authorization_code=planted"))
    r = _accept(bank, page.text, "/link/messenger", decision="decline")
    assert r.status_code == 303
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert "authorization_code" not in query and query["account_linking_token"] == [ALT]
    assert bank.linking.consents(bank.customer_id("layla")) == []


def test_accepting_needs_the_sessions_csrf_token_and_same_origin(bank: Bank) -> None:
    """A POST without the page's token, or from another site, is refused with 403 and issues no code."""
    bank.login("layla")
    page = bank.client.get(_messenger_url(bank))
    assert _accept(bank, page.text, "/link/messenger", csrf="").status_code == 403
    assert _accept(bank, page.text, "/link/messenger", csrf="x" * 43).status_code == 403
    fields = {k: _unescape(v) for k, v in _form(page.text).items()} | {"decision": "accept"}
    cross = bank.client.post(
        "/link/messenger", data=fields, headers={"Origin": "https://evil.example"}, follow_redirects=False
    )
    assert cross.status_code == 403
    framed = bank.client.post(
        "/link/messenger", data=fields, headers={"Sec-Fetch-Site": "same-site"}, follow_redirects=False
    )
    assert framed.status_code == 403
    same = bank.client.post(
        "/link/messenger", data=fields, headers={"Origin": "http://testserver"}, follow_redirects=False
    )
    assert same.status_code == 303 and "authorization_code=" in same.headers["location"]


def test_a_real_browser_post_from_our_no_referrer_page_is_accepted(bank: Bank) -> None:
    """Under our no-referrer policy browsers send Origin: null on our own forms; with the CSRF token
    and Sec-Fetch-Site: same-origin the consent is accepted."""
    bank.login("layla")
    page = bank.client.get(_messenger_url(bank))
    fields = {k: _unescape(v) for k, v in _form(page.text).items()} | {"decision": "accept"}
    headers = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    r = bank.client.post("/link/messenger", data=fields, headers=headers, follow_redirects=False)
    assert r.status_code == 303 and "authorization_code=" in r.headers["location"]


def test_a_link_url_too_long_for_login_next_resumes_through_a_cookie(bank: Bank) -> None:
    """A very long Messenger URL still comes back to the consent page after login."""
    long_redirect = REDIRECT + "&pad=" + "p" * 600
    url = _messenger_url(bank, long_redirect)
    r = bank.client.get(url, follow_redirects=False)
    assert r.status_code == 303
    next_url = parse_qs(urlsplit(r.headers["location"]).query)["next"][0]
    assert next_url == "/link/resume"
    back = bank.client.get(bank.login("sara", next_url), follow_redirects=False)
    assert back.status_code == 303 and back.headers["location"] == url
    page = bank.client.get(back.headers["location"])
    assert page.status_code == 200 and "Linking Facebook Messenger" in page.text
    assert bank.client.get("/link/resume", follow_redirects=False).status_code == 400  # cookie spent


# -- WhatsApp -------------------------------------------------------------------------------------


def test_whatsapp_one_time_link_flow_and_reuse(bank: Bank) -> None:
    """The chat's link -> login -> consent -> accept binds the wa_id; the same link then gets 410."""
    reply = bank.say(Channel.WHATSAPP, WA_ID, "what's my balance?")
    assert not _values(reply)
    [button] = reply.buttons
    link = _path(button.url)
    assert link.startswith("/link/whatsapp?token=")

    r = bank.client.get(link, follow_redirects=False)
    assert r.status_code == 303 and "/login?next=" in r.headers["location"]
    page = bank.client.get(bank.login("layla", link))
    assert page.status_code == 200 and 'dir="ltr"' in page.text
    assert load_agreements()[Channel.WHATSAPP].consent["en"].title in page.text
    assert "•••• 2222" in page.text and WA_ID not in page.text

    done = _accept(bank, page.text, "/link/whatsapp")
    assert done.status_code == 200 and "You can go back to WhatsApp now" in done.text
    assert bank.linking.customer_for(Channel.WHATSAPP, WA_ID) == bank.customer_id("layla")
    assert _values(bank.say(Channel.WHATSAPP, WA_ID, "what's my balance?"))
    assert bank.client.get(link).status_code == 410
    assert _accept(bank, page.text, "/link/whatsapp").status_code == 410
    [record] = bank.linking.consents(bank.customer_id("layla"))
    assert record.method is ConsentMethod.WHATSAPP_LINK and record.active


def test_whatsapp_link_expires(bank: Bank) -> None:
    """A link opened after its lifetime is refused, even mid-flow."""
    link = _path(bank.linking.whatsapp_link_url(WA_ID))
    page = bank.client.get(bank.login("layla", link))
    assert page.status_code == 200
    bank.clock.advance(15 * 60 + 1)
    assert bank.client.get(link).status_code == 410
    assert _accept(bank, page.text, "/link/whatsapp").status_code == 410
    assert bank.linking.binding(Channel.WHATSAPP, WA_ID) is None


def test_whatsapp_decline_links_nothing_and_spends_the_link(bank: Bank) -> None:
    """Declining says nothing was linked, and the link cannot be used afterwards."""
    link = _path(bank.linking.whatsapp_link_url(WA_ID))
    page = bank.client.get(bank.login("omar", link))
    assert "ربط واتساب بحسابك البنكي" in page.text
    r = _accept(bank, page.text, "/link/whatsapp", decision="decline")
    assert r.status_code == 200 and "لم يتم الربط" in r.text
    assert bank.client.get(link).status_code == 410
    assert bank.linking.binding(Channel.WHATSAPP, WA_ID) is None


@pytest.mark.parametrize("token", ["", "short", "x" * 300, "<script>alert(1)</script>" * 2])
def test_malformed_whatsapp_links_are_a_400(bank: Bank, token: str) -> None:
    """Garbage tokens get a clear 400 page."""
    r = bank.client.get("/link/whatsapp?token=" + quote(token))
    assert r.status_code == 400 and "<script>" not in r.text


# -- withdrawing ----------------------------------------------------------------------------------


def test_unlink_from_the_settings_page(bank: Bank) -> None:
    """The linked-apps page lists the binding; its withdraw button removes it at once and keeps the record."""
    assert (
        bank.client.get("/settings/channels", follow_redirects=False).headers["location"].startswith("/login")
    )
    layla = bank.customer_id("layla")
    binding = bank.linking.link_operator(Channel.WHATSAPP, WA_ID, layla)
    bank.login("layla")
    page = bank.client.get("/settings/channels")
    assert page.status_code == 200 and "WhatsApp" in page.text and "•••• 2222" in page.text
    r = bank.client.post(
        "/settings/channels/unlink",
        data={"consent_id": str(binding.consent_id), "csrf": _unescape(_form(page.text)["csrf"])},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/settings/channels?done=1"
    assert bank.linking.binding(Channel.WHATSAPP, WA_ID) is None
    assert not _values(bank.say(Channel.WHATSAPP, WA_ID, "what's my balance?"))
    [record] = bank.linking.consents(layla)
    assert record.withdrawn_how is WithdrawalMethod.WEBSITE
    after = bank.client.get("/settings/channels?done=1")
    assert 'id="unlinked"' in after.text and 'id="history"' in after.text and 'id="linked"' not in after.text


def test_settings_page_cannot_withdraw_another_customers_link(bank: Bank) -> None:
    """A consent id of someone else changes nothing; a POST without the token is refused."""
    theirs = bank.linking.link_operator(Channel.MESSENGER, PSID, bank.customer_id("omar"))
    bank.linking.link_operator(Channel.WHATSAPP, WA_ID, bank.customer_id("layla"))
    bank.login("layla")
    page = bank.client.get("/settings/channels")
    csrf = _unescape(_form(page.text)["csrf"])
    r = bank.client.post(
        "/settings/channels/unlink",
        data={"consent_id": str(theirs.consent_id), "csrf": csrf},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/settings/channels?done=0"
    no_token = bank.client.post("/settings/channels/unlink", data={"consent_id": str(theirs.consent_id)})
    assert no_token.status_code == 403
    assert bank.linking.binding(Channel.MESSENGER, PSID) is not None
    assert bank.linking.binding(Channel.WHATSAPP, WA_ID) is not None


def test_unlink_from_the_chat_stops_account_data(bank: Bank) -> None:
    """'ألغِ الربط' in Messenger withdraws consent; the next balance question gets a link button instead."""
    omar = bank.customer_id("omar")
    bank.linking.link_operator(Channel.MESSENGER, PSID, omar)
    assert _values(bank.say(Channel.MESSENGER, PSID, "كم رصيدي؟"))
    bank.say(Channel.MESSENGER, PSID, "ألغِ الربط")
    assert bank.linking.binding(Channel.MESSENGER, PSID) is None
    after = bank.say(Channel.MESSENGER, PSID, "كم رصيدي؟")
    assert not _values(after) and after.buttons
    assert bank.linking.consents(omar)[0].withdrawn_how is WithdrawalMethod.CHAT


def test_consent_page_switches_language_on_the_banks_own_site(bank: Bank) -> None:
    """An Arabic customer can read the consent in English; the switch link stays a same-site path."""
    bank.login("omar")
    page = bank.client.get(_messenger_url(bank))
    found = re.search(r'id="switch-lang" href="([^"]+)"', page.text)
    assert found is not None and found[1].startswith("/link/messenger?")
    english = bank.client.get(_unescape(found[1]))
    assert english.status_code == 200 and 'dir="ltr"' in english.text
    assert load_agreements()[Channel.MESSENGER].consent["en"].title in english.text
    assert 'name="lang" value="en"' in english.text


# -- a changed agreement ----------------------------------------------------------------------------


def test_a_new_agreement_version_needs_new_consent_before_account_data_flows(
    bank: Bank, tmp_path: Path
) -> None:
    """After the WhatsApp agreement changes, a user who consented to the old one gets no account data
    and a link button; consenting to the new version on the bank's site restores the service."""
    layla = bank.customer_id("layla")
    bank.linking.link_operator(Channel.WHATSAPP, WA_ID, layla)
    assert _values(bank.say(Channel.WHATSAPP, WA_ID, "what's my balance?"))

    packaged = Path(amanah.__file__).parent / "agreements"
    for f in packaged.glob("*.toml"):
        (tmp_path / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    wa = tmp_path / "whatsapp.toml"
    wa.write_text(wa.read_text(encoding="utf-8").replace('version = "2026-11-01"', 'version = "2027-02-01"'))
    settings = bank.container.settings.model_copy(update={"agreements_dir": tmp_path})
    container = build(settings, clock=bank.clock)
    try:
        with TestClient(create_app(container)) as client:
            after = Bank(client, container, bank.clock)
            reply = after.say(Channel.WHATSAPP, WA_ID, "what's my balance?")
            assert not _values(reply)
            [button] = reply.buttons
            page = client.get(after.login("layla", _path(button.url)))
            assert page.status_code == 200 and "2027-02-01" in page.text
            assert _accept(after, page.text, "/link/whatsapp").status_code == 200
            assert _values(after.say(Channel.WHATSAPP, WA_ID, "what's my balance?"))
            new, old = after.linking.consents(layla)
            assert (new.agreement_version, new.active) == ("2027-02-01", True)
            assert (old.agreement_version, old.withdrawn_how) == ("2026-11-01", WithdrawalMethod.RELINKED)
    finally:
        assert container.engine is not None
        container.engine.dispose()


# -- malformed input is a 400, never a 500 -------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    ["abc.².x", "abc.99999999999.é", "abc.١٧٠٠٠٠٠٠٠٠.x", f"{PSID}.1.x\n", ""],
    ids=["superscript-digit", "non-ascii-mac", "arabic-digits", "newline", "missing"],
)
def test_a_malformed_or_missing_state_is_a_400(bank: Bank, state: str) -> None:
    """Messenger's link with a garbled or absent state gets the clear 400 page, logged in or not."""
    query = {"account_linking_token": "t", "redirect_uri": REDIRECT, "state": state}
    url = "/link/messenger?" + urlencode(query)
    r = bank.client.get(url, follow_redirects=False)
    assert r.status_code == 400 and "not valid" in r.text
    bank.login("layla")
    assert bank.client.get(url, follow_redirects=False).status_code == 400
    page = bank.client.get(_messenger_url(bank))
    fields = {k: _unescape(v) for k, v in _form(page.text).items()} | {"decision": "accept", "state": state}
    posted = bank.client.post("/link/messenger", data=fields, follow_redirects=False)
    assert posted.status_code == 400 and "location" not in posted.headers


def test_a_redirect_uri_off_messengers_callback_path_is_a_400(bank: Bank) -> None:
    """An allowed host is not enough: the redirect must be Messenger's account-linking callback."""
    for uri in ("https://www.facebook.com/l.php?u=https://evil.example/", "https://m.facebook.com/x"):
        assert bank.client.get(_messenger_url(bank, uri), follow_redirects=False).status_code == 400


@pytest.mark.parametrize("consent_id", ["²", "١", "1\n", "-1", "1" * 13, "x"])
def test_a_malformed_consent_id_is_a_400(bank: Bank, consent_id: str) -> None:
    """The withdraw form with a non-ASCII-digit consent id (and a valid CSRF token) gets 400, not 500."""
    bank.linking.link_operator(Channel.WHATSAPP, WA_ID, bank.customer_id("layla"))
    bank.login("layla")
    csrf = _unescape(_form(bank.client.get("/settings/channels").text)["csrf"])
    r = bank.client.post(
        "/settings/channels/unlink", data={"consent_id": consent_id, "csrf": csrf}, follow_redirects=False
    )
    assert r.status_code == 400
    assert bank.linking.binding(Channel.WHATSAPP, WA_ID) is not None


# -- sessions ---------------------------------------------------------------------------------------


def test_link_pages_refuse_a_logged_out_session(bank: Bank) -> None:
    """After logout, the consent page sends the same browser back to the login, not to consent."""
    bank.login("layla")
    assert bank.client.get(_messenger_url(bank)).status_code == 200
    bank.client.post("/logout")
    r = bank.client.get(_messenger_url(bank), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
