"""Data-sharing agreements: what each channel may see, for which purposes.

An :class:`Agreement` is the bank's contract with one channel operator (or the bank's own channel),
expressed per :class:`DataCategory`. :func:`validate` returns every problem it finds as a value, so a
broken file is reported whole; the loader refuses to start with any.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType

from amanah.domain.categories import (
    FORBIDDEN_FINANCIAL_PURPOSES,
    DataCategory,
    Purpose,
    Treatment,
)
from amanah.domain.conversation import Channel

MASKABLE = frozenset({DataCategory.ACCOUNT_IDENTIFIER, DataCategory.CARD_NUMBER, DataCategory.CUSTOMER_NAME})


@dataclass(frozen=True, slots=True)
class Rule:
    treatment: Treatment
    purposes: frozenset[Purpose]


@dataclass(frozen=True, slots=True)
class ConsentText:
    """Plain words shown to the customer before linking, in one language."""

    title: str
    will_see: tuple[str, ...]
    will_not_see: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True, slots=True)
class Agreement:
    id: str
    version: str
    channel: Channel
    counterparty: str
    effective: date
    rules: Mapping[DataCategory, Rule]
    consent: Mapping[str, ConsentText] = field(default_factory=lambda: MappingProxyType({}))
    source: str = ""  # where it was loaded from, for error messages

    def treatment(self, category: DataCategory) -> Treatment:
        """The treatment for ``category``; anything not granted is denied."""
        if category is DataCategory.CREDENTIAL:
            return Treatment.DENY
        rule = self.rules.get(category)
        return rule.treatment if rule else Treatment.DENY

    def treatments(self) -> Mapping[DataCategory, Treatment]:
        return MappingProxyType({c: self.treatment(c) for c in DataCategory})

    @property
    def label(self) -> str:
        return f"{self.id}@{self.version}"


def validate(agreement: Agreement) -> list[str]:
    """Every reason ``agreement`` cannot be used; an empty list means it is sound."""
    where = agreement.source or agreement.id
    problems: list[str] = []
    if not agreement.id.strip():
        problems.append(f"{where}: agreement id is empty")
    if not agreement.version.strip():
        problems.append(f"{where}: agreement version is empty")
    missing = [c.value for c in DataCategory if c not in agreement.rules]
    if missing:
        problems.append(
            f"{where}: no rule for categories {', '.join(missing)} (every category must be stated)"
        )
    for category, rule in agreement.rules.items():
        name = f'{where}: [categories."{category.value}"]'
        if category.is_financial and rule.purposes & FORBIDDEN_FINANCIAL_PURPOSES:
            bad = ", ".join(sorted(p.value for p in rule.purposes & FORBIDDEN_FINANCIAL_PURPOSES))
            problems.append(f"{name}: financial data may never serve {bad}")
        if category is DataCategory.CREDENTIAL and rule.treatment is not Treatment.DENY:
            problems.append(f"{name}: credentials must be 'deny' on every channel")
        if rule.treatment is Treatment.MASK and category not in MASKABLE:
            problems.append(
                f"{name}: 'mask' is only defined for {', '.join(sorted(c.value for c in MASKABLE))}"
            )
        if rule.treatment.reveals and not rule.purposes:
            problems.append(f"{name}: '{rule.treatment.value}' needs at least one purpose")
        if not rule.treatment.reveals and rule.purposes - {Purpose.SERVICE}:
            problems.append(f"{name}: '{rule.treatment.value}' discloses nothing, so it cannot list purposes")
        if rule.treatment.reveals and Purpose.SERVICE not in rule.purposes:
            problems.append(f"{name}: data shown in a conversation must at least serve 'service'")
    public = agreement.rules.get(DataCategory.PUBLIC)
    if public is not None and public.treatment is not Treatment.ALLOW:
        problems.append(f"{where}: 'public' must be 'allow' (the assistant could not speak otherwise)")
    if agreement.channel.is_third_party:
        for lang in ("en", "ar"):
            if lang not in agreement.consent:
                problems.append(
                    f"{where}: consent text in '{lang}' is missing (customers opt in, in their language)"
                )
    return problems
