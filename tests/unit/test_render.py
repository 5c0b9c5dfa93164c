"""Rendering typed replies under per-category treatments."""

from __future__ import annotations

from datetime import date

from amanah.app.render import ALLOW_ALL, render
from amanah.domain.banking import AccountKind, TransactionStatus
from amanah.domain.categories import DataCategory, Treatment
from amanah.domain.money import Money
from amanah.domain.replies import (
    AccountIdentifierValue,
    AccountLabelValue,
    BalanceLine,
    BalanceValue,
    Reply,
    Say,
    TransactionLine,
    TransactionValue,
)

IBAN = "JO71CBJO0000000000001234567890"
BAL = Money.parse("2285.125", "JOD")


def _reply() -> Reply:
    return Reply(
        (
            Say("balance_intro"),
            BalanceLine(
                AccountLabelValue(AccountKind.CURRENT, "Current"),
                AccountIdentifierValue(IBAN),
                BalanceValue(BAL, BAL),
            ),
            TransactionLine(
                TransactionValue(
                    date(2026, 10, 3), "Carrefour", Money.parse("-17.875", "JOD"), TransactionStatus.BOOKED
                )
            ),
        ),
        language="en",
    )


def test_first_party_shows_everything() -> None:
    """Under the first-party treatment every value is shown and reported as shown."""
    out = render(_reply(), ALLOW_ALL)
    assert "2,285.125 JOD" in out.text and "Carrefour" in out.text
    assert IBAN in out.text.replace(" ", "")
    assert out.withheld == frozenset()
    assert out.shown[DataCategory.ACCOUNT_BALANCE] is Treatment.ALLOW


def test_secure_link_withholds_and_reports() -> None:
    """Withheld categories never appear in the text and are reported as withheld."""
    treatments = {c: Treatment.SECURE_LINK for c in DataCategory} | {DataCategory.PUBLIC: Treatment.ALLOW}
    out = render(_reply(), treatments)
    for secret in ("2,285", "2285", "Carrefour", "17.875", "1234567890", "7890"):
        assert secret not in out.text
    assert "secure page" in out.text
    assert out.withheld == {
        DataCategory.ACCOUNT_IDENTIFIER,
        DataCategory.ACCOUNT_BALANCE,
        DataCategory.TRANSACTION_DETAIL,
    }


def test_mask_shows_only_last_four() -> None:
    """A masked identifier shows its last four digits only; a balance cannot be masked."""
    treatments = dict(ALLOW_ALL) | {
        DataCategory.ACCOUNT_IDENTIFIER: Treatment.MASK,
        DataCategory.ACCOUNT_BALANCE: Treatment.MASK,
    }
    out = render(_reply(), treatments)
    assert "•••• 7890" in out.text and "123456" not in out.text
    assert "2,285" not in out.text
    assert DataCategory.ACCOUNT_BALANCE in out.withheld


def test_missing_category_is_denied() -> None:
    """A category an agreement does not name is denied, not shown."""
    out = render(_reply(), {DataCategory.PUBLIC: Treatment.ALLOW})
    assert "2,285" not in out.text and "Carrefour" not in out.text
