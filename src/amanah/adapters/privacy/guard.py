"""The egress guard: every outbound reply is rendered here under its channel's agreement.

:class:`AgreementGuard` implements :class:`~amanah.app.egress.EgressGuard`:

* ``prepare(channel, customer_id, reply)`` looks up the channel's agreement (a channel without one
  gets :func:`deny_all`: nothing but public sentences), renders every typed value under it, and, on
  third-party channels, runs the detectors over free text (knowledge-base answers, agents' messages,
  templates) and redacts what the agreement does not show in clear. When something was withheld under
  ``secure_link``, it mints a single-use link bound to the customer and to the full first-party
  rendering of the reply, and appends a sentence and a URL button to the bank's site. It returns the
  text to send and the treatment actually applied to each category the reply carried.
* ``record(conn, prepared=..., user_id=..., body=..., at=...)`` appends the disclosure to the
  hash-chained ledger, inside the caller's transaction (the one that queues ``body``).

Knowledge-base answers (``FreeText`` whose ``origin`` starts with ``kb:``) are the bank's published
text, the same for every customer: tariff amounts, the bank's phone numbers and e-mail addresses and
its SWIFT code found in them are public (:data:`PUBLISHED_KINDS`). Card numbers, IBANs, account
numbers and credentials are still redacted there, and everything is redacted in other free text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date, datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from amanah.adapters.privacy.detectors import Finding, FindingKind, detect, redact
from amanah.adapters.privacy.ledger import Disclosure, DisclosureLedger, LedgerRecord
from amanah.adapters.privacy.secure_links import LinkPurpose, SecureLinkStore
from amanah.app.egress import PreparedReply
from amanah.app.messages import label, say
from amanah.app.ports import Clock
from amanah.app.render import ALLOW_ALL, RenderedReply, render
from amanah.domain.agreements import MASKABLE, Agreement, Rule
from amanah.domain.categories import DataCategory, Purpose, Treatment
from amanah.domain.conversation import Channel
from amanah.domain.replies import FreeText, LinkButton, QuickReply, Reply

__all__ = [
    "PUBLISHED_KINDS",
    "PUBLISHED_ORIGINS",
    "AgreementGuard",
    "FreeTextScan",
    "deny_all",
]

PUBLISHED_ORIGINS = ("kb:",)
"""``FreeText`` origins that are the bank's own published text (identical for every customer)."""

PUBLISHED_KINDS = frozenset({FindingKind.AMOUNT, FindingKind.PHONE, FindingKind.EMAIL, FindingKind.SWIFT_BIC})
"""Finding kinds that are public when they occur in published text (fees, the bank's contacts)."""

SECURE_PATH = "/secure/"


def deny_all(channel: Channel) -> Agreement:
    """The agreement of a channel that has none: public sentences only, every other category denied."""
    return Agreement(
        id="none",
        version="0",
        channel=channel,
        counterparty="(no agreement: default deny)",
        effective=date.min,
        rules=MappingProxyType({DataCategory.PUBLIC: Rule(Treatment.ALLOW, frozenset({Purpose.SERVICE}))}),
        source="(built in)",
    )


def _effective(category: DataCategory, treatment: Treatment) -> Treatment:
    """What :mod:`amanah.app.render` really applies: ``mask`` on an unmaskable category withholds it."""
    if category is DataCategory.CREDENTIAL:
        return Treatment.DENY
    if treatment is Treatment.MASK and category not in MASKABLE:
        return Treatment.SECURE_LINK
    return treatment


class FreeTextScan:
    """A ``free_text_filter`` for :func:`amanah.app.render.render` that redacts detector findings.

    A finding is left in clear only when its category is ``allow``; under ``mask`` it is replaced by
    the detectors' placeholder (cards and IBANs keep their last 4, nothing else is kept); otherwise it
    is withheld. What it did is collected in ``shown`` / ``withheld`` for the ledger.
    """

    def __init__(self, treatments: Mapping[DataCategory, Treatment]) -> None:
        self.treatments = treatments
        self.shown: dict[DataCategory, Treatment] = {}
        self.withheld: set[DataCategory] = set()

    def __call__(self, block: FreeText) -> str:
        return self.scan(block.text, block.origin)

    def scan(self, text: str, origin: str) -> str:
        findings = detect(text)
        if not findings:
            return text
        published = origin.startswith(PUBLISHED_ORIGINS)
        hidden: list[Finding] = []
        for f in findings:
            if published and f.kind in PUBLISHED_KINDS:
                continue
            treatment = _effective(f.category, self.treatments.get(f.category, Treatment.DENY))
            if treatment is Treatment.ALLOW:
                self.shown[f.category] = Treatment.ALLOW
                continue
            hidden.append(f)
            if treatment is Treatment.MASK:
                self.shown.setdefault(f.category, Treatment.MASK)
            else:
                self.withheld.add(f.category)
        return redact(text, hidden) if hidden else text


# Which withheld category names a collapsed reply, most specific first.
_TOPIC_ORDER = (
    DataCategory.SPENDING_SUMMARY,
    DataCategory.TRANSACTION_DETAIL,
    DataCategory.TRANSFER_DETAIL,
    DataCategory.ACCOUNT_BALANCE,
    DataCategory.ACCOUNT_IDENTIFIER,
    DataCategory.CARD_NUMBER,
    DataCategory.CARD_STATUS,
    DataCategory.CUSTOMER_CONTACT,
    DataCategory.CUSTOMER_NAME,
)


class AgreementGuard:
    """The egress guard on the bank's agreement files. See the module docstring.

    ``agreements``: one per channel (from :func:`~amanah.adapters.privacy.agreements.load_agreements`).
    ``base_url``: the bank's own site as customers reach it; secure links point there.
    ``first_party``: the channel whose agreement governs what a secure page shows (the bank's own).
    """

    def __init__(
        self,
        agreements: Mapping[Channel, Agreement],
        secure_links: SecureLinkStore,
        ledger: DisclosureLedger,
        base_url: str,
        clock: Clock,
        *,
        ttl_s: int = 600,
        first_party: Channel = Channel.WEBCHAT,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("secure links need a positive lifetime")
        self.agreements = MappingProxyType(dict(agreements))
        self.secure_links = secure_links
        self.ledger = ledger
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.ttl_s = ttl_s
        first = self.agreements.get(first_party)
        self._first_party: Mapping[DataCategory, Treatment] = first.treatments() if first else ALLOW_ALL

    # -- EgressGuard ---------------------------------------------------------------------------

    def agreement_for(self, channel: Channel) -> Agreement:
        """The channel's agreement, or :func:`deny_all` when the bank has none for it."""
        return self.agreements.get(channel) or deny_all(channel)

    def _treatments(self, channel: Channel, customer_id: int | None) -> Mapping[DataCategory, Treatment]:
        if customer_id is None:
            # Nobody verified is listening: whatever the agreement says, only public sentences go out.
            return deny_all(channel).treatments()
        return self.agreement_for(channel).treatments()

    def screen(
        self, channel: Channel, customer_id: int | None, text: str, origin: str = "agent"
    ) -> frozenset[DataCategory]:
        """What the detectors would hide from ``text`` on ``channel`` (see :class:`EgressGuard`).

        The same scan as :meth:`prepare` (``origin`` ``kb:...`` is published text), with no side
        effect: no secure link is minted, nothing is recorded.
        """
        if not channel.is_third_party:
            return frozenset()
        scan = FreeTextScan(self._treatments(channel, customer_id))
        scan.scan(text, origin)
        masked = {c for c, t in scan.shown.items() if t is not Treatment.ALLOW}
        return frozenset(scan.withheld | masked)

    def prepare(self, channel: Channel, customer_id: int | None, reply: Reply) -> PreparedReply:
        agreement = self.agreement_for(channel)
        treatments = self._treatments(channel, customer_id)
        scan = FreeTextScan(treatments) if channel.is_third_party else None
        rendered = render(reply, treatments, free_text_filter=scan)
        lang = rendered.language

        shown: dict[DataCategory, Treatment] = dict(rendered.shown)
        withheld: set[DataCategory] = set(rendered.withheld)
        quick_replies = rendered.quick_replies
        if scan is not None:
            # Suggestion titles are text too (knowledge-base questions, labels): same backstop.
            quick_replies = tuple(
                QuickReply(scan.scan(q.title, "quick_reply"), q.payload) for q in quick_replies
            )
            for category, treatment in scan.shown.items():
                if shown.get(category) is not Treatment.ALLOW:
                    shown[category] = treatment
            withheld |= scan.withheld
        withheld -= set(shown)  # a category that reached the platform in any form counts as shown

        applied: dict[DataCategory, Treatment] = dict(shown)
        for category in withheld:
            treatment = _effective(category, treatments.get(category, Treatment.DENY))
            applied[category] = Treatment.DENY if customer_id is None else treatment

        text = rendered.text
        buttons = rendered.buttons
        typed_withheld = set(rendered.withheld) - set(shown)
        collapse = channel.is_third_party and bool(typed_withheld)
        linked = customer_id is not None and any(applied[c] is Treatment.SECURE_LINK for c in withheld)
        if collapse:
            # Say what was found, not how it looks: the number of lines, a heading's count or "nothing
            # found" would each tell the platform something about the withheld data.
            topic = next((c for c in _TOPIC_ORDER if c in typed_withheld), DataCategory.CUSTOMER_NAME)
            sentence = "withheld_summary" if linked else "withheld_denied"
            text = say(sentence, lang).format(topic=label(f"topic.{topic.value}", lang))
        if linked:
            assert customer_id is not None
            url = self._mint_withheld(channel, customer_id, reply, lang, withheld)
            if not collapse:
                text = f"{text}\n\n{say('withheld_note', lang)}" if text else say("withheld_note", lang)
            buttons = (*buttons, LinkButton(label("btn.secure", lang), url))

        return PreparedReply(
            rendered=RenderedReply(
                text=text,
                quick_replies=quick_replies,
                buttons=buttons,
                language=lang,
                shown=MappingProxyType(shown),
                withheld=frozenset(withheld),
            ),
            treatments=MappingProxyType(applied),
            agreement_id=agreement.id,
            agreement_version=agreement.version,
            channel=channel,
            customer_id=customer_id,
        )

    def lock(self, conn: Any) -> None:
        """Take the disclosure ledger's lock at the start of ``conn``'s transaction."""
        self.ledger.lock(conn)

    def record(
        self,
        conn: Any,
        *,
        prepared: PreparedReply,
        user_id: str,
        body: bytes,
        at: datetime,
    ) -> None:
        """Append one disclosure record for ``body`` (the exact bytes sent) in ``conn``'s transaction."""
        self.disclose(conn, prepared=prepared, user_id=user_id, body=body, at=at)

    def disclose(
        self,
        conn: Any,
        *,
        prepared: PreparedReply,
        user_id: str,
        body: bytes,
        at: datetime,
    ) -> LedgerRecord:
        """Like :meth:`record`, returning the stored record (for tests and tools)."""
        return self.ledger.append(
            conn,
            Disclosure(
                at=at,
                channel=prepared.channel,
                customer_id=prepared.customer_id,
                user_id=user_id,
                categories=prepared.treatments,
                agreement_id=prepared.agreement_id,
                agreement_version=prepared.agreement_version,
                body_sha256=hashlib.sha256(body).hexdigest(),
            ),
        )

    # -- secure links --------------------------------------------------------------------------

    def secure_url(self, token: str, language: str) -> str:
        """The bank-site URL of a secure link (the token is opaque; ``lang`` only picks the login page's language)."""
        return (
            f"{self.base_url}{SECURE_PATH}{quote(token, safe='')}?lang={'ar' if language == 'ar' else 'en'}"
        )

    def mint(self, customer_id: int, purpose: LinkPurpose, content: Mapping[str, Any], language: str) -> str:
        """Mint a secure link for ``customer_id`` showing ``content``; returns its URL."""
        token = self.secure_links.mint(
            customer_id=customer_id, purpose=purpose, content=content, now=self.clock.now(), ttl_s=self.ttl_s
        )
        return self.secure_url(token, language)

    def _mint_withheld(
        self, channel: Channel, customer_id: int, reply: Reply, language: str, withheld: set[DataCategory]
    ) -> str:
        full = render(reply, self._first_party, language=language)
        content = {
            "text": full.text,
            "language": full.language,
            "channel": channel.value,
            "categories": sorted(c.value for c in withheld),
        }
        return self.mint(customer_id, LinkPurpose.WITHHELD, content, language)
