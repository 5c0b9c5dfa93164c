"""The assistant's use case: one inbound message in, one typed reply out, one turn stored.

Flow: screen the text (credentials never go further) -> load the conversation -> continue a pending
multi-turn flow, or classify -> act through the ports -> build a typed :class:`Reply` -> store the
turn with the redacted inbound text. Channels render the reply; the assistant never formats a
balance into a string itself.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TypeVar

from amanah.app.commands import InboundMessage
from amanah.app.i18n import format_count, lang_of
from amanah.app.messages import label
from amanah.app.ports import Classifier, Clock, ConversationStore, CoreBanking, InboundScreen, KnowledgeBase
from amanah.app.render import render
from amanah.app.slots import (
    Period,
    extract_account_kind,
    extract_count,
    extract_period,
    find_last4,
    match_category,
    match_merchant,
)
from amanah.domain.banking import Card, CardStatus, SpendingTotal, TransactionQuery
from amanah.domain.conversation import ConversationState, ConversationStatus, Turn
from amanah.domain.errors import Forbidden, NotFound, ValidationError
from amanah.domain.intents import Classification, Intent
from amanah.domain.money import Currency, Money
from amanah.domain.replies import (
    AccountIdentifierValue,
    AccountLabelValue,
    Arg,
    BalanceLine,
    BalanceValue,
    Block,
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
)
from amanah.domain.text import detect_language, normalize

log = logging.getLogger(__name__)
K = TypeVar("K")

ACCOUNT_INTENTS = frozenset(
    {
        Intent.BALANCE,
        Intent.TRANSACTIONS,
        Intent.SPENDING,
        Intent.CARD_FREEZE,
        Intent.CARD_UNFREEZE,
        Intent.CARD_LOST,
    }
)
SUGGESTED = (Intent.BALANCE, Intent.TRANSACTIONS, Intent.CARD_FREEZE, Intent.HUMAN_AGENT)
_YES = {"yes", "y", "yeah", "yep", "sure", "ok", "okay", "confirm", "do it", "go ahead", "please do",
        "نعم", "اي", "ايوه", "ايوا", "اكيد", "تمام", "موافق", "اه", "يب", "اوكي", "طيب", "أكد", "اكد"}  # fmt: skip
_NO = {"no", "n", "nope", "cancel", "stop", "don't", "dont", "not now", "never mind", "nevermind",
       "لا", "كلا", "لأ", "مش هلق", "مش هلأ", "الغاء", "إلغاء", "لا شكرا", "خلاص لا", "بلاش"}  # fmt: skip
NOT_SPENDING = frozenset({"savings"})  # moving money between one's own accounts is not spending
_STOLEN_WORDS = ("stolen", "steal", "stole", "theft", "robbed", "سرق", "مسروق", "انسرق", "سرقه", "سرقت")

# Extra intent handlers registered by features outside the core (privacy report, unlinking, ...).
IntentHandler = Callable[["TurnContext"], Reply]
LinkUrlFor = Callable[[InboundMessage], str | None]


@dataclass
class TurnContext:
    """Everything a handler needs for one turn."""

    message: InboundMessage
    state: ConversationState
    language: str
    classification: Classification
    today: date
    meta: dict[str, object] = field(default_factory=dict)


class Assistant:
    def __init__(
        self,
        *,
        core: CoreBanking,
        conversations: ConversationStore,
        classifier: Classifier,
        knowledge: KnowledgeBase,
        screen: InboundScreen,
        clock: Clock,
        clarify_threshold: float = 0.45,
        kb_threshold: float = 0.35,
        max_message_chars: int = 2000,
        link_url_for: LinkUrlFor | None = None,
        handlers: Mapping[Intent, IntentHandler] | None = None,
    ) -> None:
        self.core = core
        self.conversations = conversations
        self.classifier = classifier
        self.knowledge = knowledge
        self.screen = screen
        self.clock = clock
        self.clarify_threshold = clarify_threshold
        self.kb_threshold = kb_threshold
        self.max_message_chars = max_message_chars
        self.link_url_for = link_url_for
        self.handlers: dict[Intent, IntentHandler] = dict(handlers or {})

    def with_parts(
        self,
        *,
        conversations: ConversationStore | None = None,
        knowledge: KnowledgeBase | None = None,
        classifier: Classifier | None = None,
    ) -> Assistant:
        """The same assistant with some of its ports replaced (a channel worker's batching ones)."""
        clone = copy.copy(self)
        if conversations is not None:
            clone.conversations = conversations
        if knowledge is not None:
            clone.knowledge = knowledge
        if classifier is not None:
            clone.classifier = classifier
        return clone

    # -- entry point --------------------------------------------------------------------------

    def handle(self, msg: InboundMessage) -> Reply:
        """Answer one message and store the turn. Raises ValidationError only for oversized input."""
        if len(msg.text) > self.max_message_chars:
            raise ValidationError(f"message longer than {self.max_message_chars} characters")
        msg = _clean(msg)
        screening = self.screen.screen(msg.text)
        state = self.conversations.load(msg.channel, msg.user_id)
        if msg.customer_id is not None or msg.channel.is_third_party:
            state.customer_id = msg.customer_id  # third party: only a consented binding identifies
        language = msg.language_hint or detect_language(msg.text, default=state.language)
        state.language = lang_of(language)
        ctx = TurnContext(
            msg, state, state.language, Classification(Intent.OUT_OF_SCOPE, 0.0), self.clock.today()
        )
        try:
            reply = self._answer(ctx, screening.credential, screening.card_last4s, screening.identifiers)
        except (NotFound, Forbidden) as exc:
            log.info("turn refused: %s", type(exc).__name__)
            reply = self._reply(ctx, [Say("error")])
        turn = Turn(
            at=self.clock.now(),
            inbound_text=screening.redacted,
            intent=ctx.classification.intent.value,
            confidence=round(ctx.classification.confidence, 4),
            reply_text=render(reply).text,
            language=ctx.language,
            meta={k: v for k, v in ctx.meta.items() if isinstance(v, str | int | float | bool)},
        )
        self.conversations.save(state, turn)
        return reply

    # -- routing ------------------------------------------------------------------------------

    def _answer(
        self, ctx: TurnContext, credential: bool, card_last4s: Sequence[str], identifiers: bool
    ) -> Reply:
        msg, state = ctx.message, ctx.state
        if credential:
            ctx.meta["screened"] = "credential"
            return self._reply(ctx, [Say("credential_warning")])
        if identifiers:
            ctx.meta["screened"] = "identifier"
            return self._identifier_typed(ctx, card_last4s)
        text = msg.text.strip()
        if not text and not msg.payload:
            return self._reply(ctx, [Say("empty")], SUGGESTED)
        if msg.payload == "resume":
            state.status = ConversationStatus.ACTIVE
            return self._reply(ctx, [Say("resumed")], SUGGESTED)
        if state.status is ConversationStatus.WAITING_AGENT:
            # Still waiting and the channel let the bot answer: nobody has the thread, escalate again.
            ctx.classification = Classification(Intent.HUMAN_AGENT, 1.0)
            waiting = self._reply(
                ctx, [Say("agent_waiting")], quick=[QuickReply(label("qr.resume", ctx.language), "resume")]
            )
            return replace(waiting, handoff=True)
        if state.pending:
            pending_reply = self._continue(ctx)
            if pending_reply is not None:
                return pending_reply
        ctx.classification = self._classify(ctx)
        return self._dispatch(ctx)

    def _classify(self, ctx: TurnContext) -> Classification:
        msg = ctx.message
        if msg.payload and msg.payload.startswith("intent:"):
            try:
                return Classification(Intent(msg.payload.removeprefix("intent:")), 1.0)
            except ValueError:
                pass
        if msg.payload and msg.payload.startswith("kb:"):
            kb_id = msg.payload.removeprefix("kb:")
            if any(e.id == kb_id for e in self.knowledge.entries()):
                ctx.meta["kb_id"] = kb_id
                return Classification(Intent.FAQ, 1.0)
        return self.classifier.classify(msg.text, ctx.language)

    def _dispatch(self, ctx: TurnContext) -> Reply:
        c = ctx.classification
        if c.intent in self.handlers:
            return self.handlers[c.intent](ctx)
        if c.confidence < self.clarify_threshold or c.intent is Intent.FAQ:
            kb = self._kb_answer(ctx)
            if kb is not None:
                return kb
            if c.intent is Intent.FAQ or c.confidence < self.clarify_threshold:
                return self._clarify(ctx)
        if c.intent in ACCOUNT_INTENTS and ctx.state.customer_id is None:
            return self._need_link(ctx)
        match c.intent:
            case Intent.GREETING:
                return self._greeting(ctx)
            case Intent.HELP:
                return self._reply(ctx, [Say("help")], SUGGESTED)
            case Intent.THANKS:
                return self._reply(ctx, [Say("thanks")])
            case Intent.GOODBYE:
                return self._reply(ctx, [Say("goodbye")])
            case Intent.BALANCE:
                return self._balance(ctx)
            case Intent.TRANSACTIONS:
                return self._transactions(ctx)
            case Intent.SPENDING:
                return self._spending(ctx)
            case Intent.CARD_FREEZE | Intent.CARD_UNFREEZE | Intent.CARD_LOST:
                return self._card_start(ctx)
            case Intent.HUMAN_AGENT:
                ctx.state.status = ConversationStatus.WAITING_AGENT
                ctx.state.pending = None
                handoff = self._reply(
                    ctx, [Say("handoff")], quick=[QuickReply(label("qr.resume", ctx.language), "resume")]
                )
                return replace(handoff, handoff=True)
            case Intent.AFFIRM | Intent.DENY:
                return self._reply(ctx, [Say("nothing_pending")], SUGGESTED)
            case Intent.UNLINK:
                return self._reply(ctx, [Say("not_linked")])
            case Intent.PRIVACY_REPORT:
                return self._reply(ctx, [Say("privacy_report_unavailable")])
            case _:
                return self._reply(ctx, [Say("out_of_scope")], SUGGESTED)

    # -- helpers ------------------------------------------------------------------------------

    def _reply(
        self,
        ctx: TurnContext,
        blocks: Sequence[Block],
        suggest: Sequence[Intent] = (),
        quick: Sequence[QuickReply] = (),
        buttons: Sequence[LinkButton] = (),
    ) -> Reply:
        qrs = list(quick) + [
            QuickReply(label(f"qr.{i.value}", ctx.language), f"intent:{i.value}") for i in suggest
        ]
        return Reply(tuple(blocks), tuple(qrs), tuple(buttons), ctx.language)

    def _need_link(self, ctx: TurnContext) -> Reply:
        url = self.link_url_for(ctx.message) if self.link_url_for else None
        buttons = [LinkButton(label("btn.link", ctx.language), url)] if url else []
        ctx.meta["needs_link"] = True
        return self._reply(ctx, [Say("need_login")], buttons=buttons)

    def _clarify(self, ctx: TurnContext) -> Reply:
        ranked = [i for i, _ in ctx.classification.ranked if i in ACCOUNT_INTENTS | {Intent.HUMAN_AGENT}]
        picks = list(dict.fromkeys([*ranked, *SUGGESTED]))[:4]
        quick: list[QuickReply] = []
        for hit in self.knowledge.search(ctx.message.text, ctx.language, limit=2):
            if hit.score >= self.kb_threshold / 2:
                q = (
                    hit.entry.questions.get(ctx.language)
                    or hit.entry.questions.get("en")
                    or (hit.entry.topic,)
                )
                quick.append(QuickReply(_short_title(q[0]), f"kb:{hit.entry.id}"))
        ctx.meta["clarified"] = True
        return self._reply(ctx, [Say("clarify")], picks, quick=quick)

    def _kb_answer(self, ctx: TurnContext) -> Reply | None:
        kb_id = ctx.meta.get("kb_id")
        if isinstance(kb_id, str):
            entry = next((e for e in self.knowledge.entries() if e.id == kb_id), None)
        else:
            hits = self.knowledge.search(ctx.message.text, ctx.language, limit=1)
            entry = hits[0].entry if hits and hits[0].score >= self.kb_threshold else None
        if entry is None:
            return None
        ctx.classification = Classification(
            Intent.FAQ, max(ctx.classification.confidence, 0.5), ctx.classification.ranked
        )
        ctx.meta["kb_id"] = entry.id
        answer = entry.answers.get(ctx.language) or entry.answers["en"]
        return self._reply(ctx, [FreeText(answer, origin=f"kb:{entry.id}")])

    def _greeting(self, ctx: TurnContext) -> Reply:
        if ctx.state.customer_id is None or ctx.message.channel.is_third_party:
            # On a platform the bank does not address the customer by the name it holds.
            return self._reply(ctx, [Say("greeting_anon")], SUGGESTED)
        customer = self.core.customer(ctx.state.customer_id)
        first = customer.display_name.split()[0] if customer.display_name else customer.username
        return self._reply(ctx, [Say("greeting", {"name": CustomerNameValue(first)})], SUGGESTED)

    # -- banking ------------------------------------------------------------------------------

    def _balance(self, ctx: TurnContext) -> Reply:
        assert ctx.state.customer_id is not None
        balances = list(self.core.balances(ctx.state.customer_id))
        kind = extract_account_kind(ctx.message.text)
        chosen = [b for b in balances if kind is None or b.account.kind is kind]
        blocks: list[Block] = []
        if kind is not None and not chosen:
            blocks.append(Say("no_such_account", {"kind": label(f"kind.{kind.value}", ctx.language)}))
            chosen = balances
        elif len(chosen) == 1:
            blocks.append(
                Say(
                    "balance_intro_one",
                    {"account": label(f"account.{chosen[0].account.kind.value}", ctx.language)},
                )
            )
        else:
            blocks.append(Say("balance_intro"))
        for b in chosen:
            blocks.append(
                BalanceLine(
                    AccountLabelValue(b.account.kind, b.account.name),
                    AccountIdentifierValue(b.account.iban),
                    BalanceValue(b.booked, b.available),
                )
            )
        return self._reply(ctx, blocks, (Intent.TRANSACTIONS, Intent.SPENDING))

    def _filters(self, ctx: TurnContext, default_period: Period | None) -> tuple[TransactionQuery, str, str]:
        """Build a query from the message; returns (query, human filter label, label for SpendingValue)."""
        assert ctx.state.customer_id is not None
        cid = ctx.state.customer_id
        text = ctx.message.text
        merchant = match_merchant(text, self.core.merchants(cid))
        category = None if merchant else match_category(text, self.core.categories(cid))
        period = extract_period(text, ctx.today) or default_period
        kind = extract_account_kind(text)
        account_id = None
        if kind is not None:
            account_id = next((a.id for a in self.core.accounts(cid) if a.kind is kind), None)
        parts: list[str] = []
        if merchant:
            parts.append(label("at", ctx.language).format(x=merchant))
        if category:
            parts.append(label("on", ctx.language).format(x=_category_label(category, ctx.language)))
        if period:
            parts.append(period.label(ctx.language))
        query = TransactionQuery(
            customer_id=cid,
            account_id=account_id,
            merchant=merchant,
            category=category,
            date_from=period.start if period else None,
            date_to=period.end if period else None,
            limit=500,
        )
        ctx.meta.update({"merchant": merchant or "", "category": category or ""})
        return query, " ".join(parts), merchant or category or ""

    def _transactions(self, ctx: TurnContext) -> Reply:
        query, filter_label, _ = self._filters(ctx, default_period=None)
        count = extract_count(ctx.message.text)
        filtered = bool(query.merchant or query.category or query.date_from)
        limit = count or (20 if filtered else 5)
        txs = list(self.core.search_transactions(_with_limit(query, limit)))
        if not txs:
            return self._reply(
                ctx,
                [Say("tx_none", {"filter": TransactionFilterValue(filter_label)})],
                (Intent.SPENDING, Intent.BALANCE),
            )
        head: Block = (
            Say("tx_intro_filtered", {"filter": TransactionFilterValue(filter_label)})
            if filtered
            else Say("tx_intro", {"count": TransactionCount(len(txs))})
        )
        lines = [TransactionLine(TransactionValue(t.booked_on, t.merchant, t.amount, t.status)) for t in txs]
        return self._reply(ctx, [head, *lines], (Intent.SPENDING, Intent.BALANCE))

    def _spending(self, ctx: TurnContext) -> Reply:
        assert ctx.state.customer_id is not None
        this_month = Period(ctx.today.replace(day=1), ctx.today, "this month", "هذا الشهر")
        query, filter_label, _ = self._filters(ctx, default_period=this_month)
        groups = [
            g for g in self.core.spending(query) if query.category or g.category.lower() not in NOT_SPENDING
        ]
        blocks: list[Block] = []
        by_currency: dict[str, list[SpendingTotal]] = {}
        for g in groups:
            by_currency.setdefault(g.total.currency.code, []).append(g)
        if not by_currency:
            # The same shape as a real total, so a withheld answer does not tell "nothing" from "something".
            accounts = self.core.accounts(ctx.state.customer_id)
            currency = accounts[0].currency if accounts else Currency.USD
            spending = SpendingValue(Money.zero(currency), 0, filter_label, query.date_from, query.date_to)
            blocks.append(Say("spending_total", {"spending": spending}))
        ordered = sorted(by_currency.values(), key=lambda gs: -sum(g.count for g in gs))
        for same in ordered:
            total = same[0].total
            for g in same[1:]:
                total = total + g.total
            count = sum(g.count for g in same)
            spending = SpendingValue(total, count, filter_label, query.date_from, query.date_to)
            blocks.append(Say("spending_total", {"spending": spending}))
        if not query.merchant and not query.category and ordered:
            blocks.append(Say("spending_top"))
            top = sorted(ordered[0], key=lambda g: -g.total.minor)[:3]  # biggest first, in one currency
            for g in top:
                on_cat = label("on", ctx.language).format(x=_category_label(g.category, ctx.language))
                spending = SpendingValue(g.total, g.count, on_cat, query.date_from, query.date_to)
                blocks.append(Say("spending_line", {"spending": spending}))
        return self._reply(ctx, blocks, (Intent.TRANSACTIONS,))

    # -- cards (multi-turn, confirm before acting) -------------------------------------------

    def _card_start(self, ctx: TurnContext) -> Reply:
        assert ctx.state.customer_id is not None
        intent = ctx.classification.intent
        action = {Intent.CARD_FREEZE: "freeze", Intent.CARD_UNFREEZE: "unfreeze"}.get(intent)
        if action is None:
            action = "stolen" if any(w in normalize(ctx.message.text) for w in _STOLEN_WORDS) else "lost"
        cards = list(self.core.cards(ctx.state.customer_id))
        if not cards:
            return self._reply(ctx, [Say("card_none")])
        last4 = find_last4(ctx.message.text)
        matching = [c for c in cards if c.last4 == last4] if last4 else []
        if len(matching) == 1:
            return self._card_confirm(ctx, action, matching[0])
        candidates = [c for c in cards if not c.status.is_final] or cards
        if len(candidates) == 1:
            return self._card_confirm(ctx, action, candidates[0])
        choices = candidates[:10]
        # The payload names the n-th choice, never the bank's card id; the title is a typed value.
        ctx.state.pending = {
            "flow": "card",
            "action": action,
            "step": "choose",
            "choices": [c.id for c in choices],
        }
        quick = [
            QuickReply(
                label("qr.card", ctx.language).format(n=format_count(i, ctx.language)),
                f"card:#{i}",
                value=CardNumberValue(c.last4, c.brand),
            )
            for i, c in enumerate(choices, start=1)
        ]
        return self._reply(ctx, [Say("card_choose")], quick=quick)

    def _card_confirm(self, ctx: TurnContext, action: str, card: Card) -> Reply:
        number = CardNumberValue(card.last4, card.brand)
        status = CardStatusValue(card.status)
        if card.status.is_final:
            ctx.state.pending = None
            return self._reply(
                ctx, [Say("card_blocked_final", {"card": number, "status": status})], (Intent.HUMAN_AGENT,)
            )
        target = _TARGET[action]
        if card.status is target:
            ctx.state.pending = None
            return self._reply(ctx, [Say("card_already", {"card": number, "status": status})])
        ctx.state.pending = {"flow": "card", "action": action, "card_id": card.id, "step": "confirm"}
        yes_no = [
            QuickReply(label("qr.yes", ctx.language), "confirm:yes"),
            QuickReply(label("qr.no", ctx.language), "confirm:no"),
        ]
        return self._reply(ctx, [Say(f"card_confirm_{action}", {"card": number})], quick=yes_no)

    def _continue(self, ctx: TurnContext) -> Reply | None:
        pending = ctx.state.pending or {}
        if pending.get("flow") != "card":
            ctx.state.pending = None
            return None
        action = str(pending.get("action"))
        assert ctx.state.customer_id is not None or ctx.message.channel.is_third_party
        if ctx.state.customer_id is None:
            ctx.state.pending = None
            return None
        cards = {c.id: c for c in self.core.cards(ctx.state.customer_id)}
        payload = ctx.message.payload or ""
        if pending.get("step") == "choose":
            choices = [c for c in pending.get("choices", []) if isinstance(c, int)]
            picked = re.fullmatch(r"card:#([0-9]{1,2})", payload)
            index = int(picked.group(1)) - 1 if picked else -1
            card_id: int | None = choices[index] if 0 <= index < len(choices) else None
            if card_id is None:
                last4 = find_last4(ctx.message.text)
                card_id = next((c.id for c in cards.values() if c.last4 == last4), None)
            if card_id in cards:
                ctx.classification = Classification(_ACTION_INTENT[action], 1.0)
                return self._card_confirm(ctx, action, cards[card_id])
            ctx.state.pending = None
            return None
        pending_card = pending.get("card_id")
        card = cards.get(pending_card) if isinstance(pending_card, int) else None
        if card is None:
            ctx.state.pending = None
            return None
        answer = self._yes_no(ctx)
        if answer is None:
            c = self.classifier.classify(ctx.message.text, ctx.language)
            if c.intent not in (Intent.AFFIRM, Intent.DENY) and c.confidence >= self.clarify_threshold:
                ctx.state.pending = None  # the customer moved on; drop the unconfirmed action
                return None
            ctx.classification = Classification(_ACTION_INTENT[action], c.confidence)
            return self._reply(
                ctx,
                [Say("confirm_again")],
                quick=[
                    QuickReply(label("qr.yes", ctx.language), "confirm:yes"),
                    QuickReply(label("qr.no", ctx.language), "confirm:no"),
                ],
            )
        ctx.state.pending = None
        if not answer:
            ctx.classification = Classification(Intent.DENY, 1.0)
            return self._reply(ctx, [Say("cancelled")], SUGGESTED)
        ctx.classification = Classification(Intent.AFFIRM, 1.0)
        updated = self.core.set_card_status(
            ctx.state.customer_id, card.id, _TARGET[action], reason=f"chat:{ctx.message.channel.value}"
        )
        ctx.meta["card_action"] = action
        done = "card_done_lost" if action in ("lost", "stolen") else f"card_done_{action}"
        args: dict[str, Arg] = {
            "card": CardNumberValue(updated.last4, updated.brand),
            "status": CardStatusValue(updated.status),
        }
        return self._reply(ctx, [Say(done, args)])

    def _yes_no(self, ctx: TurnContext) -> bool | None:
        payload = ctx.message.payload
        if payload in ("confirm:yes", "confirm:no"):
            return payload == "confirm:yes"
        t = normalize(ctx.message.text).strip(" .!؟?،,")
        if t in {normalize(w) for w in _YES}:
            return True
        if t in {normalize(w) for w in _NO}:
            return False
        c = self.classifier.classify(ctx.message.text, ctx.language)
        if c.intent is Intent.AFFIRM and c.confidence >= self.clarify_threshold:
            return True
        if c.intent is Intent.DENY and c.confidence >= self.clarify_threshold:
            return False
        return None

    def _identifier_typed(self, ctx: TurnContext, card_last4s: Sequence[str]) -> Reply:
        blocks: list[Block] = [Say("card_number_warning")]
        if ctx.state.customer_id is not None and card_last4s:
            own = [
                c
                for c in self.core.cards(ctx.state.customer_id)
                if c.last4 in card_last4s and not c.status.is_final
            ]
            if own and own[0].status is not CardStatus.FROZEN:
                card = own[0]
                ctx.state.pending = {
                    "flow": "card",
                    "action": "freeze",
                    "card_id": card.id,
                    "step": "confirm",
                }
                blocks.append(
                    Say("card_number_offer_freeze", {"card": CardNumberValue(card.last4, card.brand)})
                )
                yes_no = [
                    QuickReply(label("qr.yes", ctx.language), "confirm:yes"),
                    QuickReply(label("qr.no", ctx.language), "confirm:no"),
                ]
                return self._reply(ctx, blocks, quick=yes_no)
        return self._reply(ctx, blocks)


_TARGET = {
    "freeze": CardStatus.FROZEN,
    "unfreeze": CardStatus.ACTIVE,
    "lost": CardStatus.LOST,
    "stolen": CardStatus.STOLEN,
}
_ACTION_INTENT = {
    "freeze": Intent.CARD_FREEZE,
    "unfreeze": Intent.CARD_UNFREEZE,
    "lost": Intent.CARD_LOST,
    "stolen": Intent.CARD_LOST,
}

_CATEGORY_AR = {
    "groceries": "البقالة", "dining": "المطاعم", "transport": "المواصلات", "shopping": "التسوق",
    "utilities": "الفواتير", "entertainment": "الترفيه", "travel": "السفر", "health": "الصحة", "cash": "السحب النقدي",
    "education": "التعليم", "transfers": "التحويلات", "savings": "الادخار", "salary": "الراتب", "income": "الدخل",
}  # fmt: skip


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PAYLOAD = re.compile(r"(?:intent|kb|confirm):[A-Za-z0-9_.-]{1,64}|card:#[0-9]{1,2}|resume")


def _clean(msg: InboundMessage) -> InboundMessage:
    """Drop control characters (databases refuse NUL) and any payload that is not one of ours.

    Payloads come back from buttons we rendered, but a platform user can forge them: anything that is
    not a known shape is ignored rather than stored or interpreted.
    """
    text = _CONTROL.sub("", msg.text)
    payload = msg.payload if msg.payload and _PAYLOAD.fullmatch(msg.payload) else None
    if text == msg.text and payload == msg.payload:
        return msg
    return replace(msg, text=text, payload=payload)


def _short_title(text: str, limit: int = 20) -> str:
    """A quick-reply title within the platforms' 20-character limit, cut at a word."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def _category_label(category: str, language: str) -> str:
    if language == "ar":
        return _CATEGORY_AR.get(category.lower(), category)
    return category


def _with_limit(query: TransactionQuery, limit: int) -> TransactionQuery:
    return replace(query, limit=max(1, min(limit, 500)))


__all__ = ["Assistant", "TurnContext"]
