"""The closed taxonomy of data categories, treatments and purposes.

Every value that can leave Amanah carries exactly one :class:`DataCategory`. Agreements say, per
category, which :class:`Treatment` a third party gets and for which :class:`Purpose` it may use it.
"""

from __future__ import annotations

from enum import StrEnum


class DataCategory(StrEnum):
    """What kind of information a value is. Closed: adding one is a code change, on purpose."""

    PUBLIC = "public"
    CUSTOMER_NAME = "customer.name"
    CUSTOMER_CONTACT = "customer.contact"
    ACCOUNT_IDENTIFIER = "account.identifier"
    ACCOUNT_BALANCE = "account.balance"
    CARD_NUMBER = "card.number"
    CARD_STATUS = "card.status"
    TRANSACTION_DETAIL = "transaction.detail"
    SPENDING_SUMMARY = "spending.summary"
    TRANSFER_DETAIL = "transfer.detail"
    CREDENTIAL = "credential"

    @property
    def is_financial(self) -> bool:
        """Financial categories may never serve advertising or profiling."""
        return self in FINANCIAL_CATEGORIES


FINANCIAL_CATEGORIES = frozenset(
    {
        DataCategory.ACCOUNT_IDENTIFIER,
        DataCategory.ACCOUNT_BALANCE,
        DataCategory.CARD_NUMBER,
        DataCategory.CARD_STATUS,
        DataCategory.TRANSACTION_DETAIL,
        DataCategory.SPENDING_SUMMARY,
        DataCategory.TRANSFER_DETAIL,
        DataCategory.CREDENTIAL,
    }
)


class Treatment(StrEnum):
    """How a category is shown on a channel, from most to least revealing."""

    ALLOW = "allow"  # shown in clear
    MASK = "mask"  # shown partially (last 4 digits, initials)
    SECURE_LINK = "secure_link"  # withheld; the customer gets a link to the bank's own site
    DENY = "deny"  # withheld, no link

    @property
    def reveals(self) -> bool:
        return self in (Treatment.ALLOW, Treatment.MASK)


class Purpose(StrEnum):
    """What a recipient may use disclosed data for."""

    SERVICE = "service"  # delivering the conversation the customer asked for
    SECURITY = "security"  # fraud prevention, abuse detection
    LEGAL = "legal"  # legal obligations of the recipient
    ANALYTICS = "analytics"  # aggregate, de-identified service analytics
    ADVERTISING = "advertising"
    PROFILING = "profiling"


FORBIDDEN_FINANCIAL_PURPOSES = frozenset({Purpose.ADVERTISING, Purpose.PROFILING})
