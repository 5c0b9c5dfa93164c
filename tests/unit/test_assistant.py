"""The assistant's use case, driven end to end through in-memory fakes (no mocks)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from amanah.adapters.clock import FixedClock
from amanah.app.commands import InboundMessage
from amanah.app.render import ALLOW_ALL, render
from amanah.bootstrap import Container, build_in_memory
from amanah.domain.banking import CardStatus, TransactionQuery
from amanah.domain.categories import DataCategory, Treatment
from amanah.domain.conversation import Channel, ConversationStatus
from amanah.domain.intents import Intent
from amanah.domain.money import Money
from amanah.domain.replies import BalanceValue, SpendingValue, TransactionValue
from amanah.domain.text import to_eastern_digits

TODAY = date(2026, 11, 20)


@pytest.fixture(scope="module")
def container() -> Container:
    return build_in_memory(clock=FixedClock(datetime(2026, 11, 20, 9, 30, tzinfo=UTC)), anchor=TODAY)


class Chat:
    """A tiny driver: one customer on one channel."""

    def __init__(self, container: Container, username: str, channel: Channel = Channel.WEBCHAT) -> None:
        self.c = container
        self.customer = container.core.customer_by_username(username)
        self.channel = channel
        self.user_id = f"test:{username}:{channel.value}"

    def send(self, text: str, payload: str | None = None):  # type: ignore[no-untyped-def]
        return self.c.assistant.handle(
            InboundMessage(self.channel, self.user_id, text, customer_id=self.customer.id, payload=payload)
        )

    def text(self, text: str, payload: str | None = None) -> str:
        return render(self.send(text, payload), ALLOW_ALL).text


def _fresh(container: Container, username: str) -> Chat:
    chat = Chat(container, username)
    chat.user_id += f":{id(chat)}"
    return chat


def test_balance_lists_every_account(container: Container) -> None:
    """A balance question returns a typed balance for each of the customer's accounts."""
    chat = _fresh(container, "layla")
    reply = chat.send("what's my balance?")
    balances = [v for v in reply.values() if isinstance(v, BalanceValue)]
    expected = container.core.balances(chat.customer.id)
    assert [b.available for b in balances] == [b.available for b in expected]
    assert len(balances) == 2


def test_balance_for_one_account_kind(container: Container) -> None:
    """Asking about savings answers with the savings account only."""
    chat = _fresh(container, "layla")
    reply = chat.send("what's in my savings?")
    balances = [v for v in reply.values() if isinstance(v, BalanceValue)]
    savings = [b for b in container.core.balances(chat.customer.id) if b.account.kind.value == "savings"]
    assert [b.booked for b in balances] == [savings[0].booked]


def test_last_five_transactions(container: Container) -> None:
    """'show my last 5 transactions' lists exactly the five newest, newest first."""
    chat = _fresh(container, "omar")
    reply = chat.send("show my last 5 transactions")
    txs = [v for v in reply.values() if isinstance(v, TransactionValue)]
    newest = container.core.search_transactions(TransactionQuery(customer_id=chat.customer.id, limit=5))
    assert [(t.merchant, t.amount) for t in txs] == [(t.merchant, t.amount) for t in newest]


def test_spending_at_merchant_last_month_matches_the_ledger(container: Container) -> None:
    """Spending at a merchant last month is the exact sum of that merchant's debits in October."""
    chat = _fresh(container, "layla")
    merchants = container.core.merchants(chat.customer.id)
    merchant = next(m for m in merchants if m.lower().startswith("carrefour"))
    reply = chat.send("what did I spend at Carrefour last month")
    spent = [v for v in reply.values() if isinstance(v, SpendingValue)]
    txs = container.core.search_transactions(
        TransactionQuery(
            customer_id=chat.customer.id,
            merchant=merchant,
            date_from=date(2026, 10, 1),
            date_to=date(2026, 10, 31),
            debits_only=True,
            limit=500,
        )
    )
    assert spent, "expected a spending summary"
    assert spent[0].total.minor == sum(-t.amount.minor for t in txs if t.amount.minor < 0)
    assert spent[0].date_from == date(2026, 10, 1)


def test_spending_on_category_in_arabic_replies_in_arabic_with_eastern_digits(container: Container) -> None:
    """An Arabic spending question is answered in Arabic, with amounts in Eastern Arabic digits."""
    chat = _fresh(container, "omar")
    reply = chat.send("كم صرفت على البقالة في أكتوبر؟")
    assert reply.language == "ar"
    spent = [v for v in reply.values() if isinstance(v, SpendingValue)]
    assert spent and spent[0].total.minor > 0
    text = render(reply, ALLOW_ALL).text
    digits = f"{spent[0].total.decimal:.{spent[0].total.currency.exponent}f}".split(".")[1]
    assert to_eastern_digits(digits) in text
    assert "صرفت" in text


def test_freeze_card_asks_then_acts_on_yes(container: Container) -> None:
    """Freezing a card is multi-turn: nothing changes until the customer confirms."""
    chat = _fresh(container, "sara")
    card = container.core.cards(chat.customer.id)[0]
    assert card.status is CardStatus.ACTIVE
    first = chat.send("please freeze my card")
    assert any(q.payload == "confirm:yes" for q in first.quick_replies)
    assert container.core.cards(chat.customer.id)[0].status is CardStatus.ACTIVE
    chat.send("yes")
    assert container.core.cards(chat.customer.id)[0].status is CardStatus.FROZEN
    chat.send("unfreeze my card")
    chat.send("نعم")
    assert container.core.cards(chat.customer.id)[0].status is CardStatus.ACTIVE


def test_saying_no_cancels_the_card_action(container: Container) -> None:
    """A 'no' to the confirmation leaves the card as it was."""
    chat = _fresh(container, "layla")
    chat.send("freeze my card")
    text = chat.text("no")
    assert "haven't changed" in text
    assert container.core.cards(chat.customer.id)[0].status is CardStatus.ACTIVE


def test_report_stolen_is_final(container: Container) -> None:
    """A card reported stolen is blocked for good and cannot be unfrozen in the chat."""
    c = build_in_memory(clock=FixedClock(datetime(2026, 11, 20, tzinfo=UTC)), anchor=TODAY)
    chat = Chat(c, "omar")
    chat.send("my card was stolen")
    chat.send("yes", payload="confirm:yes")
    assert c.core.cards(chat.customer.id)[0].status is CardStatus.STOLEN
    text = chat.text("unfreeze my card")
    assert "blocked for good" in text or "موقوفة نهائياً" in text
    assert c.core.cards(chat.customer.id)[0].status is CardStatus.STOLEN


def test_faq_answer_in_both_languages(container: Container) -> None:
    """A general question is answered from the knowledge base in the language it was asked."""
    chat = _fresh(container, "layla")
    en = chat.send("what are your opening hours?")
    ar = chat.send("ما هي ساعات العمل في الفروع؟")
    assert en.language == "en" and ar.language == "ar"
    en_text, ar_text = render(en).text, render(ar).text
    assert en_text and ar_text and en_text != ar_text
    assert any(ch in ar_text for ch in "ابتثجحخدذرزسشصضطظعغفقكلمنهوي")


def test_talk_to_a_person_marks_the_conversation(container: Container) -> None:
    """Asking for a person marks the conversation as waiting for an agent and flags the reply as a handoff."""
    chat = _fresh(container, "sara")
    assert not chat.send("hello").handoff
    assert chat.send("I want to talk to a human").handoff
    state = container.conversations.load(chat.channel, chat.user_id)
    assert state.status is ConversationStatus.WAITING_AGENT
    assert state in container.conversations.waiting_for_agent() or any(
        s.user_id == chat.user_id for s in container.conversations.waiting_for_agent()
    )


def test_unclear_message_gets_a_clarifying_question(container: Container) -> None:
    """Gibberish gets a question with suggestions, not a guess."""
    chat = _fresh(container, "layla")
    reply = chat.send("blorp zanf quux")
    text = render(reply).text
    assert "not sure" in text
    assert len(reply.quick_replies) >= 2
    turns = container.conversations.turns(chat.channel, chat.user_id)
    assert turns[-1].intent in {Intent.OUT_OF_SCOPE.value, *(i.value for i in Intent)}


def test_credentials_are_never_stored(container: Container) -> None:
    """A typed PIN is answered with a warning and only a redacted form is stored."""
    chat = _fresh(container, "layla")
    text = chat.text("my pin is 4921 can you check it")
    assert "PIN" in text
    stored = container.conversations.turns(chat.channel, chat.user_id)[-1].inbound_text
    assert "4921" not in stored


def test_amounts_are_exact_money_not_floats(container: Container) -> None:
    """Balances carried by replies are Money with integer minor units."""
    chat = _fresh(container, "sara")
    for v in chat.send("balance").values():
        if isinstance(v, BalanceValue):
            assert isinstance(v.booked, Money) and isinstance(v.booked.minor, int)
            assert v.booked.decimal == Decimal(v.booked.minor).scaleb(-v.booked.currency.exponent)


def test_every_turn_is_stored(container: Container) -> None:
    """Each message adds one stored turn with its intent and reply text."""
    chat = _fresh(container, "omar")
    chat.send("hello")
    chat.send("what's my balance")
    turns = container.conversations.turns(chat.channel, chat.user_id)
    assert [t.intent for t in turns][-2:] == [Intent.GREETING.value, Intent.BALANCE.value]
    assert all(t.reply_text for t in turns)


def test_spending_reply_on_messenger_reveals_no_habits(container: Container) -> None:
    """On Messenger a spending answer names no merchant, category or amount; it offers a secure link."""
    chat = _fresh(container, "layla")
    reply = chat.send("how much did I spend at Carrefour this month")
    overall = chat.send("how much did I spend this month")
    for r in (reply, overall):
        prepared = container.guard.prepare(Channel.MESSENGER, chat.customer.id, r)
        text = prepared.rendered.text
        for word in ("Carrefour", "groceries", "transport", "dining", "shopping", "JOD"):
            assert word not in text
        assert any("/secure/" in b.url for b in prepared.rendered.buttons)


def test_withheld_answers_look_the_same_whatever_the_data(container: Container) -> None:
    """On Messenger, one match, many matches and no match give the same sentence: the shape leaks nothing."""
    chat = _fresh(container, "layla")
    merchants = container.core.merchants(chat.customer.id)
    texts = set()
    for question in (
        f"transactions at {merchants[0]} last month",
        "show my last 20 transactions",
        "transactions at Nonexistent Shop Xyz in January",
        "show my last 2 transactions",
    ):
        prepared = container.guard.prepare(Channel.MESSENGER, chat.customer.id, chat.send(question))
        texts.add(prepared.rendered.text)
    assert len(texts) == 1, texts


def test_card_choice_titles_are_typed_and_payloads_opaque(container: Container) -> None:
    """With two cards, the choice shows cards under the agreement and the payload is an index, not an id."""
    c = build_in_memory(clock=FixedClock(datetime(2026, 11, 20, tzinfo=UTC)), anchor=TODAY)
    chat = Chat(c, "layla")
    first = c.core.cards(chat.customer.id)[0]
    extra = c.core.add_card(
        chat.customer.id, first.account_id, token="tok_second", last4="9911", brand="Visa"
    )  # type: ignore[attr-defined]
    reply = chat.send("freeze my card")
    assert [q.payload for q in reply.quick_replies] == ["card:#1", "card:#2"]
    web = render(reply, ALLOW_ALL)
    assert any("9911" in q.title for q in web.quick_replies)
    denied = {cat: Treatment.DENY for cat in DataCategory} | {DataCategory.PUBLIC: Treatment.ALLOW}
    hidden = render(reply, denied)
    assert all("9911" not in q.title and first.last4 not in q.title for q in hidden.quick_replies)
    assert DataCategory.CARD_NUMBER in hidden.withheld
    chat.send("Card 2", payload="card:#2")
    chat.send("yes", payload="confirm:yes")
    assert {k.id: k.status for k in c.core.cards(chat.customer.id)}[extra.id] is CardStatus.FROZEN


@pytest.mark.parametrize("payload", ["card:²", "card:#99", "kb:my pin is 4821", "intent:nope", "x" * 300])
def test_forged_payloads_are_ignored_and_never_stored(container: Container, payload: str) -> None:
    """D8: a payload that is not one we rendered is ignored: no error, nothing of it stored."""
    chat = _fresh(container, "sara")
    chat.send("freeze my card")
    chat.send("hello", payload=payload)
    turn = container.conversations.turns(chat.channel, chat.user_id)[-1]
    assert "4821" not in str(turn.meta) and "4821" not in turn.inbound_text


def test_control_characters_are_dropped_before_storage(container: Container) -> None:
    """NUL and other control characters (refused by PostgreSQL) are removed, not stored or crashed on."""
    chat = _fresh(container, "omar")
    chat.send("hel\x00lo\x07")
    assert container.conversations.turns(chat.channel, chat.user_id)[-1].inbound_text == "hello"
