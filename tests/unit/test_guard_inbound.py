"""Inbound screening on Messenger and WhatsApp, and the privacy-report intent, end to end in memory.

A customer who types a card number or a credential on a third-party platform gets a warning (and,
for their own card, an offer to freeze it); only the redacted text is stored, and the guard's reply
shows the card by its last 4 digits only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from amanah.adapters.clock import FixedClock
from amanah.adapters.privacy.report import mentioned_channel
from amanah.adapters.privacy.secure_links import InMemorySecureLinks, LinkPurpose, token_digest
from amanah.app.commands import InboundMessage
from amanah.bootstrap import Container, build_in_memory
from amanah.domain.conversation import Channel
from amanah.domain.replies import FreeText, Say

TODAY = date(2026, 11, 20)
LAYLA_PAN = "4000056655665556"  # the demo bank's test card for layla (adapters/core/demo.py)


@pytest.fixture(scope="module")
def container() -> Container:
    return build_in_memory(clock=FixedClock(datetime(2026, 11, 20, 9, 30, tzinfo=UTC)), anchor=TODAY)


def send(container: Container, channel: Channel, user_id: str, text: str, customer_id: int | None):  # type: ignore[no-untyped-def]
    reply = container.assistant.handle(InboundMessage(channel, user_id, text, customer_id=customer_id))
    return reply, container.guard.prepare(channel, customer_id, reply)


@pytest.mark.parametrize("channel", [Channel.MESSENGER, Channel.WHATSAPP])
def test_a_typed_card_number_is_warned_redacted_and_freeze_offered(
    container: Container, channel: Channel
) -> None:
    """I1: the full number is never stored nor echoed; the reply offers to freeze the card by its last 4."""
    layla = container.core.customer_by_username("layla")
    user = f"{channel.value}-pan-{id(container)}"
    spaced = " ".join(LAYLA_PAN[i : i + 4] for i in range(0, 16, 4))
    _, prepared = send(container, channel, user, f"is my card {spaced} blocked?", layla.id)
    sent = prepared.rendered.text
    assert "don't type card numbers" in sent
    assert "•••• 5556" in sent and LAYLA_PAN[:12] not in sent.replace(" ", "")
    assert [q.payload for q in prepared.rendered.quick_replies] == ["confirm:yes", "confirm:no"]
    stored = container.conversations.turns(channel, user)[-1].inbound_text
    assert LAYLA_PAN not in stored.replace(" ", "") and "5556" in stored


@pytest.mark.parametrize("channel", [Channel.MESSENGER, Channel.WHATSAPP])
def test_a_typed_credential_is_warned_and_never_stored(container: Container, channel: Channel) -> None:
    """I1: a one-time passcode typed on a platform is answered with the warning and stored redacted."""
    user = f"{channel.value}-otp-{id(container)}"
    _, prepared = send(container, channel, user, "the otp is 839201 what now", None)
    assert "never share" in prepared.rendered.text
    assert "839201" not in container.conversations.turns(channel, user)[-1].inbound_text


def test_an_unlinked_platform_user_typing_a_card_number_gets_the_warning_only(container: Container) -> None:
    """Without a linked customer there is no card to offer to freeze, and nothing is echoed."""
    _, prepared = send(container, Channel.MESSENGER, "unlinked-pan", f"card {LAYLA_PAN}", None)
    assert "don't type card numbers" in prepared.rendered.text
    assert "5556" not in prepared.rendered.text and prepared.rendered.quick_replies == ()


def test_privacy_report_on_messenger_answers_with_a_secure_link(container: Container) -> None:
    """'What does Messenger know about me?' mints a report link bound to the customer, nothing else."""
    omar = container.core.customer_by_username("omar")
    reply, prepared = send(
        container, Channel.MESSENGER, "omar-privacy", "what does Messenger know about me?", omar.id
    )
    assert isinstance(reply.blocks[0], FreeText)
    (button,) = prepared.rendered.buttons
    assert button.url.startswith(f"{container.settings.base_url}/secure/")
    token = button.url.split("/secure/")[1].split("?")[0]
    store = container.guard.secure_links
    assert isinstance(store, InMemorySecureLinks)
    link = store.links[token_digest(token)]
    assert link.purpose is LinkPurpose.PRIVACY_REPORT and link.customer_id == omar.id
    assert link.content["channel"] == "messenger"


def test_privacy_report_on_the_web_chat_links_to_the_report_page(container: Container) -> None:
    """On the bank's own chat the report page is linked directly (the customer is logged in there)."""
    sara = container.core.customer_by_username("sara")
    _, prepared = send(
        container, Channel.WEBCHAT, "web-sara", "what data have you shared with WhatsApp", sara.id
    )
    (button,) = prepared.rendered.buttons
    assert button.url == f"{container.settings.base_url}/privacy?channel=whatsapp"


def test_privacy_report_needs_a_linked_account(container: Container) -> None:
    """An unlinked platform user is asked to link first; no link is minted."""
    reply, prepared = send(container, Channel.WHATSAPP, "wa-anon", "privacy report", None)
    assert reply.blocks == (Say("need_login"),)
    assert all("/secure/" not in b.url for b in prepared.rendered.buttons)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("what does Messenger know about me?", Channel.MESSENGER),
        ("ماذا يعرف ماسنجر عني", Channel.MESSENGER),
        ("what data have you shared with WhatsApp", Channel.WHATSAPP),
        ("ما البيانات التي شاركتموها مع واتساب", Channel.WHATSAPP),
        ("who has seen my data", None),
        ("messenger or whatsapp?", None),
    ],
)
def test_the_platform_a_customer_asks_about_is_recognised(text: str, expected: Channel | None) -> None:
    """The report is for the platform named in the question, English or Arabic, if exactly one."""
    assert mentioned_channel(text) == expected
