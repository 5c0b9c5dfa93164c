"""The egress guard on the shipped agreements, with in-memory secure links and ledger (no mocks)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime

import pytest

from amanah.adapters.clock import FixedClock
from amanah.adapters.privacy.agreements import load_agreements
from amanah.adapters.privacy.guard import AgreementGuard, deny_all
from amanah.adapters.privacy.ledger import InMemoryDisclosureLedger
from amanah.adapters.privacy.secure_links import InMemorySecureLinks, LinkPurpose, token_digest
from amanah.app.render import ALLOW_ALL, render
from amanah.domain.banking import AccountKind, CardStatus, TransactionStatus
from amanah.domain.categories import DataCategory, Treatment
from amanah.domain.conversation import Channel
from amanah.domain.money import Currency, Money
from amanah.domain.replies import (
    AccountIdentifierValue,
    AccountLabelValue,
    BalanceLine,
    BalanceValue,
    CardLine,
    CardNumberValue,
    CardStatusValue,
    CustomerNameValue,
    FreeText,
    LinkButton,
    QuickReply,
    Reply,
    Say,
    TransactionLine,
    TransactionValue,
)

IBAN = "JO71CBJO0000000000001234567890"
BASE = "https://bank.example"
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
CUSTOMER = 7


@pytest.fixture
def guard() -> AgreementGuard:
    return AgreementGuard(
        load_agreements(), InMemorySecureLinks(), InMemoryDisclosureLedger(), BASE, FixedClock(NOW), ttl_s=600
    )


def balance_reply(language: str = "en") -> Reply:
    line = BalanceLine(
        AccountLabelValue(AccountKind.CURRENT, "Current"),
        AccountIdentifierValue(IBAN),
        BalanceValue(Money(1_234_500, Currency.JOD), Money(1_200_000, Currency.JOD)),
    )
    return Reply((Say("balance_intro"), line), language=language)


def tx_reply() -> Reply:
    tx = TransactionValue(
        date(2026, 11, 3), "Carrefour City Mall", Money(-45_250, Currency.JOD), TransactionStatus.BOOKED
    )
    return Reply((Say("tx_intro", {"count": 1}), TransactionLine(tx)))


def card_reply() -> Reply:
    card = CardLine("Debit", CardNumberValue("4242", "Visa"), CardStatusValue(CardStatus.FROZEN))
    return Reply((card,))


def secure_links(guard: AgreementGuard) -> InMemorySecureLinks:
    store = guard.secure_links
    assert isinstance(store, InMemorySecureLinks)
    return store


def token_of(url: str) -> str:
    m = re.fullmatch(re.escape(BASE) + r"/secure/([A-Za-z0-9_-]+)\?lang=(en|ar)", url)
    assert m, url
    return m.group(1)


# --- typed values under the shipped agreements -------------------------------------------------


def test_messenger_balance_is_withheld_and_replaced_by_a_secure_link(guard: AgreementGuard) -> None:
    """On Messenger no IBAN or amount is sent; a URL button to the bank's site is appended instead."""
    prepared = guard.prepare(Channel.MESSENGER, CUSTOMER, balance_reply())
    text = prepared.rendered.text
    for leak in ("1,234.500", "1,200.000", "1234", "JO71", IBAN[-4:]):
        assert leak not in text
    assert "secure page" in text
    assert prepared.treatments[DataCategory.ACCOUNT_BALANCE] is Treatment.SECURE_LINK
    assert prepared.treatments[DataCategory.ACCOUNT_IDENTIFIER] is Treatment.SECURE_LINK
    (button,) = prepared.rendered.buttons
    assert button.title == "Open secure page"
    token_of(button.url)
    assert (prepared.agreement_id, prepared.agreement_version) == ("meta-messenger", "2026-11-01")


def test_the_secure_link_is_bound_to_the_customer_and_the_full_rendering(guard: AgreementGuard) -> None:
    """The link's content is the bank's own rendering of the same reply, and only its hash is kept."""
    reply = balance_reply()
    prepared = guard.prepare(Channel.WHATSAPP, CUSTOMER, reply)
    token = token_of(prepared.rendered.buttons[-1].url)
    store = secure_links(guard)
    link = store.links[token_digest(token)]
    assert token not in repr(store.links)  # only the hash is stored
    assert link.customer_id == CUSTOMER and link.purpose is LinkPurpose.WITHHELD
    assert link.content["text"] == render(reply, ALLOW_ALL).text
    assert IBAN[:4] in link.content["text"] and "1,200.000" in link.content["text"]
    assert link.content["categories"] == ["account.balance", "account.identifier"]
    assert (link.expires_at - link.created_at).total_seconds() == 600


def test_tokens_are_long_random_and_distinct(guard: AgreementGuard) -> None:
    """Each link carries a fresh URL-safe token of at least 128 bits."""
    tokens = {
        token_of(guard.prepare(Channel.MESSENGER, CUSTOMER, tx_reply()).rendered.buttons[0].url)
        for _ in range(20)
    }
    assert len(tokens) == 20
    assert all(len(t) * 6 >= 128 for t in tokens)


def test_web_chat_shows_everything_to_the_logged_in_customer(guard: AgreementGuard) -> None:
    """The bank's own channel renders like ALLOW_ALL: no link, nothing withheld."""
    reply = balance_reply()
    prepared = guard.prepare(Channel.WEBCHAT, CUSTOMER, reply)
    assert prepared.rendered.text == render(reply, ALLOW_ALL).text
    assert prepared.rendered.buttons == () and prepared.rendered.withheld == frozenset()
    assert prepared.treatments[DataCategory.ACCOUNT_BALANCE] is Treatment.ALLOW
    assert secure_links(guard).links == {}


def test_cards_show_only_last_four_and_status_on_messenger(guard: AgreementGuard) -> None:
    """Card number: masked (last 4); card status: in clear; nothing withheld, so no link."""
    prepared = guard.prepare(Channel.MESSENGER, CUSTOMER, card_reply())
    assert "Visa •••• 4242" in prepared.rendered.text and "frozen" in prepared.rendered.text
    assert prepared.treatments[DataCategory.CARD_NUMBER] is Treatment.MASK
    assert prepared.treatments[DataCategory.CARD_STATUS] is Treatment.ALLOW
    assert prepared.rendered.buttons == ()


def test_names_are_masked_on_whatsapp(guard: AgreementGuard) -> None:
    """A greeting by name shows only the initial on WhatsApp."""
    reply = Reply((Say("greeting", {"name": CustomerNameValue("Layla")}),))
    prepared = guard.prepare(Channel.WHATSAPP, CUSTOMER, reply)
    assert "Hello L.!" in prepared.rendered.text and "Layla" not in prepared.rendered.text


def test_arabic_reply_gets_arabic_note_and_button(guard: AgreementGuard) -> None:
    """The note and the button are in the reply's language, and the link opens the login in Arabic."""
    prepared = guard.prepare(Channel.WHATSAPP, CUSTOMER, balance_reply("ar"))
    assert "حفاظاً على خصوصيتك" in prepared.rendered.text
    assert prepared.rendered.buttons[0].title == "فتح الصفحة الآمنة"
    assert prepared.rendered.buttons[0].url.endswith("?lang=ar")
    assert "١٬٢٠٠" not in prepared.rendered.text


def test_existing_buttons_are_kept_before_the_secure_link(guard: AgreementGuard) -> None:
    """A reply's own buttons stay, and the secure link comes last."""
    reply = Reply(tx_reply().blocks, buttons=(LinkButton("Help", f"{BASE}/help"),))
    buttons = guard.prepare(Channel.MESSENGER, CUSTOMER, reply).rendered.buttons
    assert [b.title for b in buttons] == ["Help", "Open secure page"]


# --- fail closed -------------------------------------------------------------------------------


def test_a_channel_without_agreement_gets_public_text_only(guard: AgreementGuard) -> None:
    """The terminal has no agreement file: every typed value is denied, without a link."""
    prepared = guard.prepare(Channel.CLI, CUSTOMER, card_reply())
    assert "4242" not in prepared.rendered.text and "frozen" not in prepared.rendered.text
    assert prepared.treatments[DataCategory.CARD_NUMBER] is Treatment.DENY
    assert prepared.rendered.buttons == ()
    assert prepared.agreement_id == "none"
    assert deny_all(Channel.CLI).treatment(DataCategory.CARD_STATUS) is Treatment.DENY


def test_an_unlinked_user_gets_no_values_and_no_link(guard: AgreementGuard) -> None:
    """With no verified customer, even values the agreement shows are denied and no link is minted."""
    prepared = guard.prepare(Channel.MESSENGER, None, Reply((*card_reply().blocks, *balance_reply().blocks)))
    assert "4242" not in prepared.rendered.text and "1,200.000" not in prepared.rendered.text
    assert prepared.treatments[DataCategory.CARD_NUMBER] is Treatment.DENY
    assert prepared.treatments[DataCategory.ACCOUNT_BALANCE] is Treatment.DENY
    assert prepared.rendered.buttons == () and secure_links(guard).links == {}
    assert "For your privacy" not in prepared.rendered.text


# --- free text backstop ------------------------------------------------------------------------


def test_agent_free_text_is_redacted_on_messenger(guard: AgreementGuard) -> None:
    """An agent's message with an IBAN and an amount loses both on Messenger and gets a link."""
    text = f"Hi, your IBAN is {IBAN} and your balance is 1,250.75 JOD."
    prepared = guard.prepare(Channel.MESSENGER, CUSTOMER, Reply((FreeText(text, origin="agent"),)))
    sent = prepared.rendered.text
    assert IBAN not in sent and "1,250.75" not in sent
    assert "[AMOUNT]" in sent
    assert prepared.treatments[DataCategory.ACCOUNT_IDENTIFIER] is Treatment.SECURE_LINK
    assert prepared.treatments[DataCategory.ACCOUNT_BALANCE] is Treatment.SECURE_LINK
    link = next(iter(secure_links(guard).links.values()))
    assert IBAN in link.content["text"]  # the customer still reads it, on the bank's page


def test_agent_free_text_is_untouched_on_the_web_chat(guard: AgreementGuard) -> None:
    """The bank's own channel is not scanned: the customer sees the agent's words as written."""
    text = f"Your IBAN is {IBAN}."
    prepared = guard.prepare(Channel.WEBCHAT, CUSTOMER, Reply((FreeText(text, origin="agent"),)))
    assert prepared.rendered.text == text


def test_a_card_number_in_free_text_keeps_only_its_last_four(guard: AgreementGuard) -> None:
    """Card numbers are 'mask' on Messenger: a full PAN in free text becomes its last 4 digits."""
    text = "The card 4111 1111 1111 1111 was blocked."
    prepared = guard.prepare(Channel.MESSENGER, CUSTOMER, Reply((FreeText(text, origin="agent"),)))
    assert "4111 1111" not in prepared.rendered.text and "1111]" in prepared.rendered.text
    assert prepared.treatments[DataCategory.CARD_NUMBER] is Treatment.MASK
    assert prepared.rendered.buttons == ()


def test_credentials_in_free_text_are_denied_without_link(guard: AgreementGuard) -> None:
    """A PIN written in free text never leaves, and no link offers it."""
    prepared = guard.prepare(
        Channel.WHATSAPP, CUSTOMER, Reply((FreeText("Your PIN is 4821.", origin="agent"),))
    )
    assert "4821" not in prepared.rendered.text
    assert prepared.treatments[DataCategory.CREDENTIAL] is Treatment.DENY
    assert prepared.rendered.buttons == ()


def test_published_knowledge_base_amounts_and_phones_stay(guard: AgreementGuard) -> None:
    """Tariffs and the bank's phone number in a KB answer are public; a card number there is not."""
    kb = "The fee is 2 JOD a month. Call 06 500 0000. Example card 4111 1111 1111 1111."
    prepared = guard.prepare(Channel.MESSENGER, CUSTOMER, Reply((FreeText(kb, origin="kb:fees"),)))
    sent = prepared.rendered.text
    assert "2 JOD" in sent and "06 500 0000" in sent
    assert "4111 1111 1111 1111" not in sent
    assert DataCategory.ACCOUNT_BALANCE not in prepared.treatments


def test_the_same_amount_from_an_agent_is_redacted(guard: AgreementGuard) -> None:
    """Outside the knowledge base an amount is treated as the customer's balance."""
    prepared = guard.prepare(Channel.MESSENGER, CUSTOMER, Reply((FreeText("It is 2 JOD.", origin="agent"),)))
    assert "2 JOD" not in prepared.rendered.text


def test_quick_reply_titles_are_scanned_too(guard: AgreementGuard) -> None:
    """A suggestion title carrying an IBAN is redacted; its payload is kept for the round trip."""
    reply = Reply((Say("help"),), quick_replies=(QuickReply(f"Pay {IBAN}", "pay:1"),))
    prepared = guard.prepare(Channel.MESSENGER, CUSTOMER, reply)
    (qr,) = prepared.rendered.quick_replies
    assert IBAN not in qr.title and qr.payload == "pay:1"


def test_screen_names_what_the_detectors_would_hide_from_an_agent_and_mints_nothing(
    guard: AgreementGuard,
) -> None:
    """screen() reports the categories prepare() would mask or withhold, without minting a link."""
    text = f"Your card 4111 1111 1111 1111 and IBAN {IBAN}."
    assert guard.screen(Channel.MESSENGER, CUSTOMER, text) == {
        DataCategory.CARD_NUMBER,
        DataCategory.ACCOUNT_IDENTIFIER,
    }
    assert guard.screen(Channel.WHATSAPP, None, "Call me on +962 79 123 4567") == {
        DataCategory.CUSTOMER_CONTACT
    }
    assert guard.screen(Channel.MESSENGER, CUSTOMER, "Hello, I'm Sam from the card team.") == set()
    assert guard.screen(Channel.WEBCHAT, CUSTOMER, text) == set()  # the bank's own channel: not scanned
    assert secure_links(guard).links == {}


# --- ledger ------------------------------------------------------------------------------------


def test_record_appends_one_chained_disclosure(guard: AgreementGuard) -> None:
    """record() stores categories, treatments, agreement and the SHA-256 of the bytes: not the bytes."""
    prepared = guard.prepare(Channel.MESSENGER, CUSTOMER, balance_reply())
    body = b'{"recipient":{"id":"psid"},"message":{"text":"..."}}'
    guard.record(None, prepared=prepared, user_id="psid", body=body, at=NOW)
    guard.record(
        None,
        prepared=guard.prepare(Channel.MESSENGER, CUSTOMER, card_reply()),
        user_id="psid",
        body=b"x",
        at=NOW,
    )
    first, second = guard.ledger.records()
    assert first.body_sha256 == hashlib.sha256(body).hexdigest()
    assert first.categories == {
        "public": "allow",
        "account.balance": "secure_link",
        "account.identifier": "secure_link",
    }
    assert (first.channel, first.customer_id, first.user_id) == ("messenger", CUSTOMER, "psid")
    assert (first.agreement_id, first.agreement_version) == ("meta-messenger", "2026-11-01")
    assert second.prev_hash == first.hash
    assert guard.ledger.verify() == []


def test_guard_refuses_a_non_positive_ttl() -> None:
    """A secure link must expire in the future."""
    with pytest.raises(ValueError, match="lifetime"):
        AgreementGuard({}, InMemorySecureLinks(), InMemoryDisclosureLedger(), BASE, FixedClock(NOW), ttl_s=0)
