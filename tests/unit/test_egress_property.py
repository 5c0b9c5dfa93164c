"""Property: under any valid agreement, no withheld value reaches a platform's bytes, in any rendering.

For any agreement (valid ones over all categories and treatments), any customer (or none), either
language, and any reply built from the typed values of ``domain/replies.py`` (arbitrary Money, valid
IBANs, merchants, payees, names, dates, cards), the guard prepares the reply and the real Messenger
and WhatsApp renderers turn it into request bodies. Then no value of a category the agreement does
not show in clear appears in those bodies, searched in its usual renderings: with and without
separators, grouped thousands, space-grouped, Eastern Arabic digits (with ASCII or Arabic
separators), the locale formats, ISO dates, and IBANs compact, grouped and as BBAN.

A needle that legitimately occurs in the payload (because it is also part of a value the agreement
does show, or of the catalogue's fixed sentences, or of the payload's fixed fields) cannot witness a
leak and is skipped: the corpus of legitimate text is built independently of the guard.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from stdnum import iban as stdnum_iban

from amanah.adapters.channels.base import OutboundMessage
from amanah.adapters.channels.messenger import MessengerAdapter
from amanah.adapters.channels.whatsapp import WhatsAppAdapter
from amanah.adapters.clock import FixedClock
from amanah.adapters.privacy.guard import AgreementGuard
from amanah.adapters.privacy.ledger import InMemoryDisclosureLedger
from amanah.adapters.privacy.secure_links import InMemorySecureLinks
from amanah.app.i18n import format_day, format_money
from amanah.app.messages import CATALOGUE, LABELS
from amanah.app.render import ALLOW_ALL, render
from amanah.domain.agreements import MASKABLE, Agreement, ConsentText, Rule, validate
from amanah.domain.banking import AccountKind, CardStatus, TransactionStatus
from amanah.domain.categories import FORBIDDEN_FINANCIAL_PURPOSES, DataCategory, Purpose, Treatment
from amanah.domain.conversation import Channel
from amanah.domain.money import Currency, Money
from amanah.domain.replies import (
    AccountIdentifierValue,
    AccountLabelValue,
    BalanceLine,
    BalanceValue,
    Block,
    CardLine,
    CardNumberValue,
    CardStatusValue,
    CustomerNameValue,
    LinkButton,
    QuickReply,
    Reply,
    Say,
    SpendingValue,
    TransactionLine,
    TransactionValue,
    TransferValue,
    Value,
)
from amanah.domain.text import to_eastern_digits

BASE = "https://bank.example"
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
USER = "-_-"  # no letters or digits, so it cannot look like a value
BRANDS = ("Visa", "Mastercard", "mada")
MESSENGER = MessengerAdapter("vt", "secret")
WHATSAPP = WhatsAppAdapter("vt", "secret", "400000000000004")

# --- agreements ---------------------------------------------------------------------------------


@st.composite
def agreements(draw: st.DrawFn) -> Agreement:
    channel = draw(st.sampled_from([Channel.MESSENGER, Channel.WHATSAPP]))
    rules: dict[DataCategory, Rule] = {}
    for category in DataCategory:
        if category is DataCategory.PUBLIC:
            options = [Treatment.ALLOW]
        elif category is DataCategory.CREDENTIAL:
            options = [Treatment.DENY]
        elif category in MASKABLE:
            options = list(Treatment)
        else:
            options = [Treatment.ALLOW, Treatment.SECURE_LINK, Treatment.DENY]
        treatment = draw(st.sampled_from(options))
        purposes: frozenset[Purpose] = frozenset()
        if treatment.reveals:
            allowed = [p for p in Purpose if p is not Purpose.SERVICE]
            if category.is_financial:
                allowed = [p for p in allowed if p not in FORBIDDEN_FINANCIAL_PURPOSES]
            purposes = frozenset({Purpose.SERVICE, *draw(st.sets(st.sampled_from(allowed)))})
        rules[category] = Rule(treatment, purposes)
    consent = {lang: ConsentText("t", ("a",), ("b",)) for lang in ("en", "ar")}
    agreement = Agreement(
        id="generated",
        version="1",
        channel=channel,
        counterparty="x",
        effective=date(2026, 1, 1),
        rules=MappingProxyType(rules),
        consent=MappingProxyType(consent),
    )
    assert validate(agreement) == [], validate(agreement)
    return agreement


# --- typed values -------------------------------------------------------------------------------

money = st.builds(
    Money,
    minor=st.integers(min_value=-(10**13), max_value=10**13),
    currency=st.sampled_from(list(Currency)),
)
_ALNUM_UPPER = string.ascii_uppercase + string.digits
_BBAN = {  # registry layouts: n = digits, a = upper-case letters, c = either
    "DE": "18n",
    "GB": "4a14n",
    "SA": "2n18c",
    "JO": "4a4n18c",
    "AE": "3n16n",
    "KW": "4a22c",
}


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(sorted(_BBAN)))
    bban = ""
    layout = _BBAN[country]
    for count, kind in ((int(m[:-1]), m[-1]) for m in _split_layout(layout)):
        alphabet = {"n": string.digits, "a": string.ascii_uppercase, "c": _ALNUM_UPPER}[kind]
        bban += draw(st.text(alphabet=alphabet, min_size=count, max_size=count))
    check = stdnum_iban.calc_check_digits(f"{country}00{bban}")
    number = f"{country}{check}{bban}"
    assume(stdnum_iban.is_valid(number))
    return number


def _split_layout(layout: str) -> Iterator[str]:
    part = ""
    for ch in layout:
        part += ch
        if ch.isalpha():
            yield part
            part = ""


_LETTERS = string.ascii_letters + "".join(chr(c) for c in range(0x0621, 0x064B))
words = st.text(alphabet=_LETTERS, min_size=2, max_size=10)
phrases = st.lists(words, min_size=1, max_size=3).map(" ".join).filter(lambda s: len(s) >= 4)
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
last4s = st.text(alphabet=string.digits, min_size=4, max_size=4)

values: st.SearchStrategy[Value] = st.one_of(
    st.builds(CustomerNameValue, phrases),
    st.builds(AccountIdentifierValue, ibans()),
    st.builds(BalanceValue, money, money),
    st.builds(CardNumberValue, last4s, st.sampled_from(BRANDS)),
    st.builds(CardStatusValue, st.sampled_from(list(CardStatus))),
    st.builds(TransactionValue, days, phrases, money, st.sampled_from(list(TransactionStatus))),
    st.builds(SpendingValue, money, st.integers(0, 10_000), phrases, st.none() | days, st.none() | days),
    st.builds(TransferValue, phrases, money, st.sampled_from(["sent", "pending"])),
)


def block_for(v: Value) -> st.SearchStrategy[Block]:
    """A block carrying ``v`` the way the assistant would (lines for accounts, cards, transactions)."""
    if isinstance(v, AccountIdentifierValue):
        return st.builds(
            BalanceLine,
            st.builds(AccountLabelValue, st.sampled_from(list(AccountKind)), st.just("Account")),
            st.just(v),
            st.builds(BalanceValue, money, money),
        )
    if isinstance(v, TransactionValue):
        return st.just(TransactionLine(v))
    if isinstance(v, CardNumberValue):
        return st.builds(
            CardLine,
            st.just("Debit"),
            st.just(v),
            st.builds(CardStatusValue, st.sampled_from(list(CardStatus))),
        )
    if isinstance(v, CustomerNameValue):
        return st.just(Say("greeting", {"name": v}))
    return st.just(Say("spending_line", {"label": "groceries", "spending": v}))


replies = st.builds(
    lambda blocks, lang, quick: Reply(tuple(blocks), quick, language=lang),
    st.lists(values.flatmap(block_for), min_size=1, max_size=6),
    st.sampled_from(["en", "ar"]),
    st.just((QuickReply("My balance", "intent:balance"),)) | st.just(()),
)

# --- needles: the usual renderings of a value ---------------------------------------------------


def _digits(s: str) -> int:
    return sum(c.isdigit() for c in s)


def money_needles(m: Money) -> set[str]:
    d = abs(m.decimal)
    e = m.currency.exponent
    plain = f"{d:.{e}f}"
    grouped = f"{d:,.{e}f}"
    forms = {
        plain,
        grouped,
        grouped.replace(",", " "),
        grouped.replace(",", "\u00a0"),
        plain.replace(".", ""),
        format_money(m, "en"),
        format_money(m, "ar"),
        format_money(abs(m) if m.minor < 0 else m, "en"),
    }
    for form in list(forms):
        forms.add(to_eastern_digits(form))
        forms.add(to_eastern_digits(form.replace(",", "\u066c").replace(".", "\u066b")))
    return {f for f in forms if _digits(f) >= 3}


def iban_needles(number: str) -> set[str]:
    compact = number.replace(" ", "")
    grouped = " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    forms = {compact, grouped, grouped.replace(" ", "-"), compact[4:], compact.lower()}
    return forms | {to_eastern_digits(f) for f in forms}


def day_needles(day: date) -> set[str]:
    return {format_day(day, "en"), format_day(day, "ar"), day.isoformat(), day.strftime("%d/%m/%Y")}


def needles(v: Value) -> set[str]:
    match v:
        case CustomerNameValue(name=name):
            return {name}
        case AccountIdentifierValue(iban=number):
            return iban_needles(number)
        case BalanceValue(booked=booked, available=available):
            return money_needles(booked) | money_needles(available)
        case CardNumberValue(last4=last4):
            return {last4, to_eastern_digits(last4)}
        case CardStatusValue(status=status):
            return {LABELS[f"status.{status.value}"]["en"], LABELS[f"status.{status.value}"]["ar"]}
        case TransactionValue(booked_on=day, merchant=merchant, amount=amount):
            return {merchant} | money_needles(amount) | day_needles(day)
        case SpendingValue(total=total):
            return money_needles(total)
        case TransferValue(payee_name=payee, amount=amount):
            return {payee} | money_needles(amount)
        case AccountLabelValue():
            return set()
    raise AssertionError(v)  # pragma: no cover


def in_clear(agreement: Agreement, customer_id: int | None, category: DataCategory) -> bool:
    """Whether the agreement lets ``category`` out in clear to this recipient."""
    if category is DataCategory.PUBLIC:
        return True
    if customer_id is None:
        return False
    treatment = agreement.treatment(category)
    if category is DataCategory.CARD_NUMBER:
        return treatment.reveals  # Amanah holds only the last 4 digits: the mask *is* the value shown
    return treatment is Treatment.ALLOW


# --- payload --------------------------------------------------------------------------------------


def leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from leaves(v)


def payload(
    channel: Channel,
    texts: tuple[str, ...],
    quick: tuple[QuickReply, ...],
    buttons: tuple[LinkButton, ...],
    lang: str,
) -> list[str]:
    outbound = OutboundMessage(channel, USER, texts, quick, buttons, key="k", language=lang)
    adapter = MESSENGER if channel is Channel.MESSENGER else WHATSAPP
    return [leaf for request in adapter.render(outbound) for leaf in leaves(dict(request.body))]


def skeleton(channel: Channel) -> list[str]:
    """The fixed strings of a platform body (field values like ``RESPONSE``, ``web_url``)."""
    return payload(channel, ("\x01",), (QuickReply("\x02", "\x03"),), (LinkButton("\x04", "\x05"),), "en")


STATIC = "\x00".join(
    [text for entry in (*CATALOGUE.values(), *LABELS.values()) for text in entry.values()]
    + list(BRANDS)
    + [BASE]
)


class LetterTokens:
    """Deterministic tokens without letters runs or digits, so they cannot look like a value."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return "-_" * 11 + "-" * self.n


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(agreement=agreements(), reply=replies, customer_id=st.none() | st.integers(1, 10**6))
def test_no_withheld_value_appears_in_the_platform_bytes(
    agreement: Agreement, reply: Reply, customer_id: int | None
) -> None:
    """Every needle of a value not allowed in clear is absent from the bodies sent to the platform."""
    channel = agreement.channel
    guard = AgreementGuard(
        {channel: agreement},
        InMemorySecureLinks(token_factory=LetterTokens()),
        InMemoryDisclosureLedger(),
        BASE,
        FixedClock(NOW),
    )
    prepared = guard.prepare(channel, customer_id, reply)
    r = prepared.rendered
    sent = payload(channel, (r.text,), r.quick_replies, r.buttons, r.language)
    haystack = "\x00".join(sent)

    shown = [v for v in reply.values() if in_clear(agreement, customer_id, v.category)]
    legit = [STATIC, *skeleton(channel), *(b.url for b in r.buttons)]
    for v in shown:
        one = Reply((Say("spending_line", {"label": "", "spending": v}),), language=r.language)
        legit.append(render(one, ALLOW_ALL).text)
        legit.append(render(one, agreement.treatments()).text)
    corpus = "\x00".join(legit)

    for v in reply.values():
        if in_clear(agreement, customer_id, v.category):
            continue
        for needle in needles(v):
            if needle in corpus:
                continue  # also part of legitimate text: cannot witness a leak
            assert needle not in haystack, f"{v.category.value} value leaked as {needle!r}"

    # What was withheld under secure_link is offered behind a link to the bank's site, to a known customer.
    linked = customer_id is not None and Treatment.SECURE_LINK in prepared.treatments.values()
    assert linked == (f"{BASE}/secure/" in haystack)
    # The ledger will never say a category went out in clear when the agreement does not allow it.
    for category, treatment in prepared.treatments.items():
        if not in_clear(agreement, customer_id, category):
            assert treatment is not Treatment.ALLOW, category
