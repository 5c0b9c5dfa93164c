"""Turn a typed :class:`Reply` into text under a per-category treatment.

The renderer is the only code that turns typed values into characters. It is told, per category,
whether to show a value in clear (``allow``), partly (``mask``), or not at all (``secure_link`` /
``deny``), and it reports which categories it showed and which it withheld, so that the egress
guard can audit exactly what left.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from amanah.app.i18n import count_transactions, format_count, format_day, format_money, lang_of
from amanah.app.messages import label, say
from amanah.domain.banking import TransactionStatus
from amanah.domain.categories import DataCategory, Treatment
from amanah.domain.replies import (
    AccountIdentifierValue,
    AccountLabelValue,
    Arg,
    BalanceLine,
    BalanceValue,
    Block,
    CardLine,
    CardNumberValue,
    CardStatusValue,
    CustomerNameValue,
    FreeText,
    LinkButton,
    QuickReply,
    Reply,
    Say,
    SpendingValue,
    TransactionCount,
    TransactionFilterValue,
    TransactionLine,
    TransactionValue,
    TransferValue,
    Value,
)

ALLOW_ALL: Mapping[DataCategory, Treatment] = MappingProxyType(
    {c: (Treatment.DENY if c is DataCategory.CREDENTIAL else Treatment.ALLOW) for c in DataCategory}
)
"""First-party treatment: the logged-in customer sees everything (credentials are never rendered)."""

_MASKABLE = frozenset({DataCategory.ACCOUNT_IDENTIFIER, DataCategory.CARD_NUMBER, DataCategory.CUSTOMER_NAME})


@dataclass(frozen=True, slots=True)
class RenderedReply:
    """Channel-neutral text of a reply and what it disclosed."""

    text: str
    quick_replies: tuple[QuickReply, ...]
    buttons: tuple[LinkButton, ...]
    language: str
    shown: Mapping[DataCategory, Treatment] = field(default_factory=dict)  # category -> treatment applied
    withheld: frozenset[DataCategory] = frozenset()

    @property
    def categories(self) -> frozenset[DataCategory]:
        return frozenset(self.shown) | self.withheld


class _Render:
    def __init__(
        self,
        treatments: Mapping[DataCategory, Treatment],
        language: str,
        free_text_filter: Callable[[FreeText], str] | None = None,
    ) -> None:
        self.treatments = treatments
        self.lang = lang_of(language)
        self.free_text_filter = free_text_filter
        self.shown: dict[DataCategory, Treatment] = {DataCategory.PUBLIC: Treatment.ALLOW}
        self.withheld: set[DataCategory] = set()

    def treatment(self, category: DataCategory) -> Treatment:
        t = self.treatments.get(category, Treatment.DENY)
        if t is Treatment.MASK and category not in _MASKABLE:
            t = Treatment.SECURE_LINK  # a balance cannot be "partly" shown: withhold it
        if category is DataCategory.CREDENTIAL:
            t = Treatment.DENY
        return t

    def value(self, v: Value) -> str:
        cat = v.category
        t = self.treatment(cat)
        if not t.reveals:
            self.withheld.add(cat)
            return say("withheld", self.lang)
        self.shown[cat] = t
        return self._value_text(v, masked=t is Treatment.MASK)

    def _value_text(self, v: Value, masked: bool) -> str:
        lang = self.lang
        match v:
            case CustomerNameValue(name=name):
                return name.split()[0][0] + "." if masked else name
            case AccountLabelValue(kind=kind):
                return label(f"account.{kind.value}", lang)
            case AccountIdentifierValue():
                return f"•••• {v.last4}" if masked else _group(v.iban)
            case BalanceValue(booked=booked, available=available):
                text = f"{format_money(available, lang)} {label('available', lang)}"
                if booked != available:
                    text += f" ({format_money(booked, lang)} {label('booked', lang)})"
                return text
            case CardNumberValue(last4=last4, brand=brand):
                return f"{brand} •••• {last4}"
            case CardStatusValue(status=status):
                return label(f"status.{status.value}", lang)
            case TransactionValue(booked_on=day, merchant=merchant, amount=amount, status=status):
                text = f"{format_day(day, lang)} · {merchant} · {format_money(amount, lang)}"
                if status is TransactionStatus.PENDING:
                    text += f" ({label('tx.pending', lang)})"
                return text
            case SpendingValue(total=total, count=count):
                text = f"{format_money(total, lang)} ({count_transactions(count, lang)})"
                return f"{text} {v.label}" if v.label else text
            case TransactionFilterValue(label=text):
                return text
            case TransferValue(payee_name=payee, amount=amount, status=status):
                return f"{format_money(amount, lang)} → {payee} ({status})"
        raise TypeError(f"unrenderable value {v!r}")  # pragma: no cover - exhaustive match above

    def arg(self, a: Arg) -> str:
        if isinstance(a, TransactionCount):
            return count_transactions(a.n, self.lang)
        if isinstance(a, int):
            return format_count(a, self.lang)
        if isinstance(a, str):
            return a
        return self.value(a)

    def block(self, b: Block) -> str:
        match b:
            case Say(key=key, args=args):
                return say(key, self.lang).format(**{k: self.arg(a) for k, a in args.items()})
            case BalanceLine(label=lbl, identifier=ident, balance=bal):
                name = self.value(lbl)
                return f"• {name[:1].upper()}{name[1:]} ({self.value(ident)}): {self.value(bal)}"
            case TransactionLine(transaction=tx):
                return f"• {self.value(tx)}"
            case CardLine(label=lbl, number=num, status=st):
                return f"• {lbl} {self.value(num)}: {self.value(st)}"
            case FreeText(text=text):
                return self.free_text_filter(b) if self.free_text_filter else text
        raise TypeError(f"unrenderable block {b!r}")  # pragma: no cover


def _quick_title(r: _Render, q: QuickReply) -> str:
    assert q.value is not None
    if r.treatment(q.value.category).reveals:
        return r.value(q.value)
    r.withheld.add(q.value.category)
    return q.title


_SPACES = re.compile(r"[ \t]{2,}")
_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+([.:؟?!،,])")


def _tidy(line: str) -> str:
    """Collapse the gaps an empty argument leaves ("no transactions ." -> "no transactions.")."""
    return _SPACE_BEFORE_PUNCT.sub(r"\1", _SPACES.sub(" ", line)).strip()


def _group(iban: str) -> str:
    compact = iban.replace(" ", "")
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def render(
    reply: Reply,
    treatments: Mapping[DataCategory, Treatment] = ALLOW_ALL,
    language: str | None = None,
    free_text_filter: Callable[[FreeText], str] | None = None,
) -> RenderedReply:
    """Render ``reply`` as text, applying ``treatments`` to every typed value it carries.

    ``free_text_filter``, when given, gives the text of every :class:`FreeText` block (the egress guard
    passes one that redacts what the detectors find in it, knowing the block's ``origin``).
    """
    r = _Render(treatments, language or reply.language, free_text_filter)
    lines = [_tidy(r.block(b)) for b in reply.blocks]
    quick = tuple(
        q if q.value is None else QuickReply(_quick_title(r, q), q.payload) for q in reply.quick_replies
    )
    return RenderedReply(
        text="\n".join(line for line in lines if line),
        quick_replies=quick,
        buttons=reply.buttons,
        language=r.lang,
        shown=MappingProxyType(dict(r.shown)),
        withheld=frozenset(r.withheld),
    )
