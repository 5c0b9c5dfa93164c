"""Account linking and consent (LinkingService) on in-memory fakes, and the chat's UNLINK intent."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from amanah.adapters.clock import FixedClock
from amanah.adapters.privacy.agreements import load_agreements
from amanah.adapters.storage.memory_linking import InMemoryLinkStore
from amanah.app.assistant import TurnContext
from amanah.app.commands import InboundMessage
from amanah.app.linking import LinkingService, hash_secret
from amanah.app.render import ALLOW_ALL, render
from amanah.bootstrap import Container, build_in_memory
from amanah.domain.conversation import Channel, ConversationState
from amanah.domain.errors import ValidationError
from amanah.domain.intents import Classification, Intent
from amanah.domain.linking import Binding, ConsentMethod, GrantKind, WithdrawalMethod
from amanah.domain.replies import BalanceValue, LinkButton, Reply

T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
BASE = "https://bank.example"
PSID = "2000000000000002"
WA_ID = "15550002222"
ALT = "ARTnbOSmJvH1-linking-token"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def store() -> InMemoryLinkStore:
    return InMemoryLinkStore()


@pytest.fixture
def service(store: InMemoryLinkStore, clock: FixedClock) -> LinkingService:
    return LinkingService(store, load_agreements(), clock, base_url=BASE, secret="test-secret")


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# -- Messenger ------------------------------------------------------------------------------------


def test_messenger_link_url_carries_a_state_signed_for_the_psid(service: LinkingService) -> None:
    """The account_link URL is on the bank's domain and its state verifies to the PSID it was made for."""
    url = service.messenger_link_url(PSID)
    assert url.startswith(f"{BASE}/link/messenger?state=")
    assert service.check_state(_query(url)["state"]) == PSID
    assert service.messenger_link_url() == f"{BASE}/link/messenger"


@pytest.mark.parametrize("tamper", ["psid", "expiry", "mac"])
def test_tampered_state_is_refused(service: LinkingService, tamper: str) -> None:
    """Changing the PSID, the expiry or the MAC of a state makes it fail verification."""
    psid, exp, mac = _query(service.messenger_link_url(PSID))["state"].split(".")
    forged = {
        "psid": f"{psid[:-1]}9.{exp}.{mac}",
        "expiry": f"{psid}.{int(exp) + 1}.{mac}",
        "mac": f"{psid}.{exp}.{'A' * len(mac)}",
    }[tamper]
    with pytest.raises(ValidationError):
        service.check_state(forged)


@pytest.mark.parametrize(
    "state",
    [
        None,
        "",
        "abc.².x",  # "²".isdigit() is True, but int("²") raises
        "abc.99999999999.é",  # non-ASCII: hmac.compare_digest raises TypeError on str
        "2000000000000002.١٧٠٠٠٠٠٠٠٠.x",  # Arabic-Indic digits
        "2000000000000002\n.1700000000.x",
        "2000000000000002.1700000000.x\n",
        "a.b.c",
        "a.1.b.c",
        "é.1700000000.x",
        "2000000000000002.9999999999999999999999.x",
    ],
)
def test_missing_or_malformed_state_is_a_validation_error(service: LinkingService, state: str | None) -> None:
    """A link without our signed state, or with a malformed one, is refused cleanly (never a crash)."""
    with pytest.raises(ValidationError):
        service.check_state(state)


def test_state_expires_after_a_day(service: LinkingService, clock: FixedClock) -> None:
    """A link button older than the state's lifetime no longer verifies."""
    state = _query(service.messenger_link_url(PSID))["state"]
    clock.advance(24 * 3600 + 1)
    with pytest.raises(ValidationError, match="expired"):
        service.check_state(state)


@pytest.mark.parametrize(
    "uri",
    [
        "https://www.facebook.com/messenger_platform/account_linking/?account_linking_token=x",
        "https://facebook.com/messenger_platform/account_linking/",
        "https://m.messenger.com/messenger_platform/account_linking?y=1",
        "https://www.facebook.com:443/messenger_platform/account_linking/?account_linking_token=x",
    ],
)
def test_allowed_redirect_uris(service: LinkingService, uri: str) -> None:
    """Messenger's account-linking callback on facebook.com / messenger.com (or a subdomain) is accepted."""
    assert service.check_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "http://www.facebook.com/x",
        "https://evil.example/x",
        "https://facebook.com.evil.example/x",
        "https://evilfacebook.com/x",
        "https://user@facebook.com/x",
        "https://facebook.com@evil.example/x",
        "https://evil.example\\@facebook.com/x",
        "https://facebook.com:8443/x",
        "//facebook.com/x",
        "/relative",
        "javascript:alert(1)//facebook.com",
        "https://facebook.com/x y",
        "https://facebоok.com/x",  # Cyrillic o
        "https://www.facebook.com/x",  # an allowed host, but not the account-linking callback
        "https://www.facebook.com/l.php?u=https://evil.example/",  # Facebook's own link redirector
        "https://www.facebook.com/messenger_platform/account_linking/../../l.php",
        "https://www.facebook.com/messenger_platform/account_linking/x",
    ],
)
def test_foreign_or_malformed_redirect_uris_are_refused(service: LinkingService, uri: str) -> None:
    """Anything but a plain https URL on an allowed host is refused: never an open redirect."""
    with pytest.raises(ValidationError):
        service.check_redirect_uri(uri)


def test_redirect_hosts_come_from_the_setting(store: InMemoryLinkStore, clock: FixedClock) -> None:
    """The allowlist is configurable: another host is accepted only when listed."""
    custom = LinkingService(
        store, load_agreements(), clock, base_url=BASE, secret="s", redirect_hosts=["example.org"]
    )
    assert custom.check_redirect_uri("https://a.example.org/messenger_platform/account_linking/")
    with pytest.raises(ValidationError):
        custom.check_redirect_uri("https://www.facebook.com/messenger_platform/account_linking/")


def test_authorization_code_is_random_opaque_and_stored_hashed(
    service: LinkingService, store: InMemoryLinkStore
) -> None:
    """Codes carry 256 random bits, differ each time, and only their SHA-256 is stored."""
    codes = {service.issue_authorization_code(7, ALT) for _ in range(5)}
    assert len(codes) == 5
    for code in codes:
        assert len(base64.urlsafe_b64decode(code + "=")) >= 16  # at least 128 bits
        grant = store.grant(GrantKind.MESSENGER_CODE, hash_secret(code))
        assert grant is not None and grant.token_hash != code
        assert code not in repr(grant)
        assert grant.customer_id == 7 and grant.context_hash == hash_secret(ALT)
        assert (grant.expires_at - grant.issued_at).total_seconds() == 300


def test_complete_messenger_binds_the_psid_with_a_consent_record(service: LinkingService) -> None:
    """A valid code from the webhook links the PSID, recording who, which agreement, when and how."""
    code = service.issue_authorization_code(7, ALT, psid=PSID)
    binding = service.complete_messenger(PSID, code, T0)
    assert binding is not None and binding.customer_id == 7
    assert service.customer_for(Channel.MESSENGER, PSID) == 7
    [consent] = service.consents(7)
    assert consent.method is ConsentMethod.MESSENGER_ACCOUNT_LINKING
    assert (consent.channel, consent.user_id, consent.given_at) == (Channel.MESSENGER, PSID, T0)
    agreement = service.agreement(Channel.MESSENGER)
    assert (consent.agreement_id, consent.agreement_version) == (agreement.id, agreement.version)
    assert consent.active


def test_a_code_is_single_use(service: LinkingService) -> None:
    """Replaying an authorization code is refused, from the same PSID or another."""
    code = service.issue_authorization_code(7, ALT)
    assert service.complete_messenger(PSID, code) is not None
    assert service.complete_messenger(PSID, code) is None
    assert service.complete_messenger("2000000000000099", code) is None
    assert service.customer_for(Channel.MESSENGER, "2000000000000099") is None


def test_a_code_expires_after_five_minutes(service: LinkingService, clock: FixedClock) -> None:
    """A code redeemed after its short lifetime links nothing."""
    code = service.issue_authorization_code(7, ALT)
    clock.advance(301)
    assert service.complete_messenger(PSID, code) is None
    assert service.binding(Channel.MESSENGER, PSID) is None


def test_a_code_bound_to_a_psid_cannot_link_another(service: LinkingService) -> None:
    """E3: a code issued from a link button sent to PSID A does not link PSID B (and is spent)."""
    code = service.issue_authorization_code(7, ALT, psid=PSID)
    assert service.complete_messenger("2000000000000099", code) is None
    assert service.complete_messenger(PSID, code) is None
    assert service.binding(Channel.MESSENGER, PSID) is None


@pytest.mark.parametrize("code", ["", "short", "x" * 500, "not a code!" * 4])
def test_unknown_or_malformed_codes_link_nothing(service: LinkingService, code: str) -> None:
    """Garbage in the webhook's authorization_code is refused without error."""
    assert service.complete_messenger(PSID, code) is None


def test_messenger_extensions_link_records_how_it_was_made(service: LinkingService) -> None:
    """A webview-verified PSID is bound with a consent record saying it came from Messenger Extensions."""
    binding = service.complete_messenger_extensions(PSID, 7, T0)
    assert binding.customer_id == 7 and service.customer_for(Channel.MESSENGER, PSID) == 7
    [consent] = service.consents(7)
    assert consent.method is ConsentMethod.MESSENGER_EXTENSIONS
    agreement = service.agreement(Channel.MESSENGER)
    assert (consent.agreement_id, consent.agreement_version) == (agreement.id, agreement.version)


@pytest.mark.parametrize("psid", ["", "   ", "2000 0002", "x" * 201, "<script>"])
def test_messenger_extensions_link_refuses_a_malformed_psid(service: LinkingService, psid: str) -> None:
    """A PSID that is empty, too long or has unexpected characters is a ValidationError, nothing bound."""
    with pytest.raises(ValidationError):
        service.complete_messenger_extensions(psid, 7)
    assert service.consents(7) == []


# -- WhatsApp -------------------------------------------------------------------------------------


def test_whatsapp_link_is_one_time_and_binds_the_wa_id(service: LinkingService) -> None:
    """The link minted for a wa_id binds that wa_id to whoever accepted, once."""
    url = service.whatsapp_link_url(WA_ID)
    assert url.startswith(f"{BASE}/link/whatsapp?token=")
    token = _query(url)["token"]
    assert len(base64.urlsafe_b64decode(token + "=")) >= 16
    pending = service.whatsapp_pending(token)
    assert pending is not None and pending.user_id == WA_ID
    binding = service.complete_whatsapp(token, 9)
    assert binding is not None and (binding.user_id, binding.customer_id) == (WA_ID, 9)
    assert service.consents(9)[0].method is ConsentMethod.WHATSAPP_LINK
    assert service.whatsapp_pending(token) is None
    assert service.complete_whatsapp(token, 10) is None
    assert service.customer_for(Channel.WHATSAPP, WA_ID) == 9


def test_whatsapp_link_expires(service: LinkingService, clock: FixedClock) -> None:
    """An unused WhatsApp link stops working after its lifetime."""
    token = _query(service.whatsapp_link_url(WA_ID))["token"]
    clock.advance(15 * 60 + 1)
    assert service.whatsapp_pending(token) is None
    assert service.complete_whatsapp(token, 9) is None


def test_declining_spends_the_whatsapp_link(service: LinkingService) -> None:
    """After a decline the same link cannot be used to link."""
    token = _query(service.whatsapp_link_url(WA_ID))["token"]
    assert service.decline_whatsapp(token)
    assert service.complete_whatsapp(token, 9) is None
    assert service.consents(9) == []


def test_link_url_for_each_channel(service: LinkingService) -> None:
    """Messenger gets an account_link URL, WhatsApp a one-time link, first-party channels nothing."""
    m = service.link_url_for(InboundMessage(Channel.MESSENGER, PSID, "balance"))
    assert m is not None and service.is_link_url(m) and service.check_state(_query(m)["state"]) == PSID
    w = service.link_url_for(InboundMessage(Channel.WHATSAPP, WA_ID, "balance"))
    assert w is not None and "/link/whatsapp?token=" in w and not service.is_link_url(w)
    assert service.link_url_for(InboundMessage(Channel.WEBCHAT, "customer:1", "balance")) is None


# -- withdrawing ----------------------------------------------------------------------------------


def test_unlink_removes_the_binding_at_once_and_keeps_the_consent_as_proof(
    service: LinkingService, clock: FixedClock
) -> None:
    """After unlink, binding() is None immediately; the consent record remains, marked withdrawn."""
    service.link_operator(Channel.WHATSAPP, WA_ID, 9)
    clock.advance(60)
    assert service.unlink(Channel.WHATSAPP, WA_ID, WithdrawalMethod.CHAT)
    assert service.binding(Channel.WHATSAPP, WA_ID) is None
    assert service.customer_for(Channel.WHATSAPP, WA_ID) is None
    [consent] = service.consents(9)
    assert consent.method is ConsentMethod.OPERATOR_CLI
    assert consent.withdrawn_at == clock.now() and consent.withdrawn_how is WithdrawalMethod.CHAT
    assert not service.unlink(Channel.WHATSAPP, WA_ID, "chat")


def test_relinking_a_user_withdraws_the_previous_consent(service: LinkingService) -> None:
    """The same PSID linked again (to another customer) replaces the old binding; both records stay."""
    service.link_operator(Channel.MESSENGER, PSID, 7)
    service.link_operator(Channel.MESSENGER, PSID, 8)
    assert service.customer_for(Channel.MESSENGER, PSID) == 8
    [old] = service.consents(7)
    assert old.withdrawn_how is WithdrawalMethod.RELINKED
    assert service.consents(8)[0].active


def test_unlink_own_only_touches_the_customers_own_bindings(service: LinkingService) -> None:
    """The site's withdraw button cannot remove another customer's binding."""
    theirs = service.link_operator(Channel.MESSENGER, PSID, 7)
    assert not service.unlink_own(8, theirs.consent_id, WithdrawalMethod.WEBSITE)
    assert service.binding(Channel.MESSENGER, PSID) is not None
    assert service.unlink_own(7, theirs.consent_id, WithdrawalMethod.WEBSITE)
    assert service.consents(7)[0].withdrawn_how is WithdrawalMethod.WEBSITE


class RelinkedMeanwhile(InMemoryLinkStore):
    """A store where, right after a read of a customer's bindings, customer 8 relinks those users
    (what a concurrent request could do between that read and a later write)."""

    relinked = False

    def bindings_of(self, customer_id: int) -> Sequence[Binding]:
        found = super().bindings_of(customer_id)
        for b in found:
            self.relinked = True
            self.bind(
                channel=b.channel,
                user_id=b.user_id,
                customer_id=8,
                agreement_id=b.agreement_id,
                agreement_version=b.agreement_version,
                method=ConsentMethod.OPERATOR_CLI,
                given_at=T0,
                at=T0,
            )
        return found


def test_unlink_own_never_removes_a_newer_binding_of_the_same_user(clock: FixedClock) -> None:
    """Withdrawing consent X from the site removes only the binding made under X, never a relink's."""
    store = RelinkedMeanwhile()
    service = LinkingService(store, load_agreements(), clock, base_url=BASE, secret="s")
    mine = service.link_operator(Channel.MESSENGER, PSID, 7)
    service.unlink_own(7, mine.consent_id, WithdrawalMethod.WEBSITE)
    assert service.customer_for(Channel.MESSENGER, PSID) == (8 if store.relinked else None)
    assert all(c.active for c in service.consents(8))
    service.link_operator(Channel.MESSENGER, PSID, 8)
    assert not service.unlink_own(7, mine.consent_id, WithdrawalMethod.WEBSITE)  # X is gone for good
    assert service.customer_for(Channel.MESSENGER, PSID) == 8


def test_unlink_listeners_hear_about_every_withdrawal(service: LinkingService) -> None:
    """Listeners (e.g. the channel worker telling Meta) get the removed binding and how."""
    heard: list[tuple[Binding, WithdrawalMethod]] = []
    service.unlink_listeners.append(lambda b, how: heard.append((b, how)))

    def broken(binding: Binding, how: WithdrawalMethod) -> None:
        raise RuntimeError("listener bug")

    service.unlink_listeners.append(broken)  # a broken listener does not stop the unlink
    service.link_operator(Channel.MESSENGER, PSID, 7)
    assert service.unlink(Channel.MESSENGER, PSID, WithdrawalMethod.PLATFORM)
    assert [(b.user_id, how) for b, how in heard] == [(PSID, WithdrawalMethod.PLATFORM)]


def test_a_new_agreement_version_suspends_bindings_until_the_customer_consents_again(
    store: InMemoryLinkStore, clock: FixedClock
) -> None:
    """Consent was to one agreement version: after a change the user is unlinked until re-consent."""
    old = load_agreements()
    before = LinkingService(store, old, clock, base_url=BASE, secret="test-secret")
    before.link_operator(Channel.WHATSAPP, WA_ID, 9)
    m_code = before.issue_authorization_code(9, ALT, psid=PSID)
    assert before.complete_messenger(PSID, m_code) is not None
    assert before.customer_for(Channel.WHATSAPP, WA_ID) == 9

    changed = {**old, Channel.WHATSAPP: replace(old[Channel.WHATSAPP], version="2027-01-01")}
    after = LinkingService(store, changed, clock, base_url=BASE, secret="test-secret")
    assert after.customer_for(Channel.WHATSAPP, WA_ID) is None  # consented to the old terms only
    assert after.binding(Channel.WHATSAPP, WA_ID) is not None  # kept, so it can still be withdrawn
    assert after.customer_for(Channel.MESSENGER, PSID) == 9  # Messenger's agreement did not change
    url = after.link_url_for(InboundMessage(Channel.WHATSAPP, WA_ID, "balance"))
    assert url is not None

    token = _query(url)["token"]
    binding = after.complete_whatsapp(token, 9)  # the customer accepts the new version
    assert binding is not None and binding.agreement_version == "2027-01-01"
    assert after.customer_for(Channel.WHATSAPP, WA_ID) == 9
    new, old_record = [c for c in after.consents(9) if c.channel is Channel.WHATSAPP]
    assert new.active and new.agreement_version == "2027-01-01"
    assert old_record.withdrawn_how is WithdrawalMethod.RELINKED


def test_operators_cannot_link_first_party_channels(service: LinkingService) -> None:
    """Only Messenger and WhatsApp users are ever linked; web chat uses the bank's login."""
    with pytest.raises(ValidationError):
        service.link_operator(Channel.WEBCHAT, "customer:1", 7)
    with pytest.raises(ValidationError):
        service.link_operator(Channel.WHATSAPP, "  ", 7)


def test_purge_forgets_only_long_expired_secrets(
    service: LinkingService, store: InMemoryLinkStore, clock: FixedClock
) -> None:
    """Expired grants older than a day are purged; fresh ones stay."""
    old = _query(service.whatsapp_link_url(WA_ID))["token"]
    clock.advance(2 * 24 * 3600)
    fresh = _query(service.whatsapp_link_url(WA_ID))["token"]
    assert service.purge_expired() == 1
    assert store.grant(GrantKind.WHATSAPP_TOKEN, hash_secret(old)) is None
    assert store.grant(GrantKind.WHATSAPP_TOKEN, hash_secret(fresh)) is not None


# -- the assistant, wired as in production ---------------------------------------------------------


@pytest.fixture
def container() -> Container:
    return build_in_memory(clock=FixedClock(T0), anchor=date(2026, 11, 20))


def _send(
    container: Container, channel: Channel, user_id: str, text: str, payload: str | None = None
) -> Reply:
    assert container.linking is not None
    cid = container.linking.customer_for(channel, user_id)
    return container.assistant.handle(
        InboundMessage(channel, user_id, text, customer_id=cid, payload=payload)
    )


def test_unlinked_whatsapp_user_gets_a_link_button_and_no_account_data(container: Container) -> None:
    """Asking about accounts before linking gives a one-time link to the bank's site, not a balance."""
    reply = _send(container, Channel.WHATSAPP, WA_ID, "what's my balance?")
    assert not [v for v in reply.values() if isinstance(v, BalanceValue)]
    [button] = reply.buttons
    assert isinstance(button, LinkButton) and "/link/whatsapp?token=" in button.url
    assert container.linking is not None
    assert container.linking.whatsapp_pending(_query(button.url)["token"]) is not None


def test_unlinked_user_still_gets_public_service(container: Container) -> None:
    """FAQ-type questions are answered without linking."""
    reply = _send(container, Channel.MESSENGER, PSID, "what are your opening hours?")
    assert reply.buttons == ()
    assert "link" not in render(reply, ALLOW_ALL).text.lower()


def test_linked_user_gets_account_data_until_they_type_unlink(container: Container) -> None:
    """After linking, balances flow; "unlink" in the chat stops them at once, with a confirmation."""
    assert container.linking is not None
    layla = container.core.customer_by_username("layla")
    container.linking.link_operator(Channel.WHATSAPP, WA_ID, layla.id)
    reply = _send(container, Channel.WHATSAPP, WA_ID, "what's my balance?")
    assert [v for v in reply.values() if isinstance(v, BalanceValue)]
    done = _send(container, Channel.WHATSAPP, WA_ID, "unlink")
    assert "no longer linked" in render(done, ALLOW_ALL).text
    assert container.linking.binding(Channel.WHATSAPP, WA_ID) is None
    assert container.linking.consents(layla.id)[0].withdrawn_how is WithdrawalMethod.CHAT
    after = _send(container, Channel.WHATSAPP, WA_ID, "what's my balance?")
    assert not [v for v in after.values() if isinstance(v, BalanceValue)]
    assert container.conversations.load(Channel.WHATSAPP, WA_ID).customer_id is None


@pytest.mark.parametrize(
    ("text", "expected"), [("ألغِ الربط", "لم تعد هذه المحادثة مرتبطة"), ("stop", "no longer linked")]
)
def test_unlink_words_in_both_languages(container: Container, text: str, expected: str) -> None:
    """ "ألغِ الربط" unlinks with an Arabic confirmation; "stop" unlinks too."""
    assert container.linking is not None
    omar = container.core.customer_by_username("omar")
    container.linking.link_operator(Channel.MESSENGER, PSID, omar.id)
    reply = _send(container, Channel.MESSENGER, PSID, text)
    assert expected in render(reply, ALLOW_ALL).text
    assert container.linking.binding(Channel.MESSENGER, PSID) is None


def test_unlink_when_not_linked_says_so(container: Container) -> None:
    """Typing unlink in a chat that is not linked changes nothing and says it is not linked."""
    reply = _send(container, Channel.WHATSAPP, WA_ID, "unlink")
    assert "not linked" in render(reply, ALLOW_ALL).text


def test_unsure_unlink_asks_for_confirmation_first(container: Container) -> None:
    """A low-confidence UNLINK guess asks first (with an Unlink button) instead of unlinking."""
    assert container.linking is not None
    container.linking.link_operator(Channel.WHATSAPP, WA_ID, 1)
    msg = InboundMessage(Channel.WHATSAPP, WA_ID, "hmm maybe disconnect something", customer_id=1)
    ctx = TurnContext(
        msg,
        ConversationState(Channel.WHATSAPP, WA_ID, customer_id=1),
        "en",
        Classification(Intent.UNLINK, 0.3),
        T0.date(),
    )
    reply = container.linking.handle_unlink(ctx)
    assert [q.payload for q in reply.quick_replies] == ["intent:unlink"]
    assert container.linking.binding(Channel.WHATSAPP, WA_ID) is not None
    _send(container, Channel.WHATSAPP, WA_ID, "", payload="intent:unlink")
    assert container.linking.binding(Channel.WHATSAPP, WA_ID) is None


def test_unlink_on_the_banks_own_chat_points_to_the_settings_page(container: Container) -> None:
    """The web chat has nothing to unlink; the reply links to the linked-apps page."""
    reply = container.assistant.handle(InboundMessage(Channel.WEBCHAT, "customer:1", "unlink", customer_id=1))
    assert [b.url for b in reply.buttons] == ["http://127.0.0.1:8000/settings/channels"]
