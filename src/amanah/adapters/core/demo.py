"""The deterministic demo bank: three customers with six months of history ending on an anchor date.

:func:`demo_bank` is pure: the same anchor always gives the same bank, and a different anchor gives
the same customers, accounts, cards, payees, merchants, amounts and sequence, with only the dates
shifted. :func:`seed_demo` loads it into the SQL database (idempotent; ``reset=True`` rebuilds it);
:func:`demo_in_memory` loads it into the in-memory fakes for unit tests. ``docs/demo.md`` describes
the data for people.

Card numbers: each demo card's last four digits come from a public, Luhn-valid test PAN. The PAN is
only used here to derive ``last4``; it is never stored, and neither is any other card secret.
Banks, BICs and account numbers are fictitious (the IBANs are structurally valid and pass mod-97).
"""

from __future__ import annotations

import functools
import random
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import stdnum.bic
import stdnum.iban
import stdnum.luhn
from sqlalchemy import Connection, Engine, delete, select, update

from amanah.adapters.storage.db import advisory_lock, write_engine
from amanah.adapters.storage.memory import InMemoryAuthenticator, InMemoryCoreBanking
from amanah.adapters.storage.passwords import hash_password
from amanah.adapters.storage.schema import (
    accounts,
    card_status_changes,
    cards,
    core_transactions,
    customers,
    payees,
)
from amanah.domain.banking import AccountKind, CardStatus, TransactionStatus
from amanah.domain.money import Currency, Money

HISTORY_DAYS = 182  # about six months, the anchor day included
PENDING_DAYS = 2  # card spending in the last two days is still pending


# -- the data ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    username: str
    password: str  # a public demo password, shown on the login page; only its hash is stored
    display_name: str  # as the bank records it, in the customer's preferred script
    display_name_en: str
    display_name_ar: str
    language: str  # preferred language: "en" or "ar"


@dataclass(frozen=True, slots=True)
class DemoAccount:
    key: str  # "<username>.<kind>", links cards and transactions to the account
    username: str
    kind: AccountKind
    name: str
    iban: str
    currency: Currency


@dataclass(frozen=True, slots=True)
class DemoCard:
    username: str
    account_key: str
    token: str  # the card processor's opaque token
    last4: str
    brand: str
    status: CardStatus
    expires: str  # "MM/YY"


@dataclass(frozen=True, slots=True)
class DemoPayee:
    username: str
    name: str
    iban: str
    bank_name: str
    bic: str


@dataclass(frozen=True, slots=True)
class DemoTransaction:
    account_key: str
    booked_on: date
    merchant: str
    category: str
    amount: Money  # negative = money out
    status: TransactionStatus
    reference: str


@dataclass(frozen=True, slots=True)
class DemoBank:
    anchor: date
    customers: tuple[DemoCustomer, ...]
    accounts: tuple[DemoAccount, ...]
    cards: tuple[DemoCard, ...]
    payees: tuple[DemoPayee, ...]
    transactions: tuple[DemoTransaction, ...]

    @property
    def usernames(self) -> tuple[str, ...]:
        return tuple(c.username for c in self.customers)

    def account(self, key: str) -> DemoAccount:
        return next(a for a in self.accounts if a.key == key)


# -- static profile of each customer ----------------------------------------------------------------

# Fictitious banks: (name, BIC, IBAN bank code) per country. Amanah Bank is the bank running Amanah.
_BANKS: dict[str, tuple[str, str, str]] = {
    "amanah-jo": ("Amanah Bank", "AMNBJOAM", "AMNB"),
    "amanah-sa": ("Amanah Bank", "AMNBSARI", "97"),
    "amanah-ae": ("Amanah Bank", "AMNBAEAD", "097"),
    "petra-jo": ("Petra Commercial Bank", "PTCBJOAM", "PTCB"),
    "najd-sa": ("Najd National Bank", "NJNBSARI", "98"),
    "redsea-sa": ("Red Sea Bank", "RSBKSAJE", "99"),
    "crescent-ae": ("Gulf Crescent Bank", "GCBKAEAD", "098"),
    "heritage-ae": ("Emirates Heritage Bank", "EHBKAEAA", "099"),
}

# Public Luhn-valid test PANs (card-network documentation). Only their last four digits are used.
_TEST_PANS = {"layla": "4000056655665556", "omar": "5200828282828210", "sara": "4012888888881881"}

# (merchant, lowest, highest) in minor units of the current account's currency.
_Spend = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class _Profile:
    customer: DemoCustomer
    country: str
    current_currency: Currency
    savings_currency: Currency
    savings_rate: Decimal  # savings-currency units per current-currency unit
    employer: str
    salary: int  # minor units
    savings_transfer: int  # minor units of the current currency, monthly
    card_brand: str
    payees: tuple[tuple[str, str], ...]  # (name, bank key)
    monthly_transfers: tuple[tuple[int, int, str, int], ...]  # (every N days, offset, payee, amount)
    utilities: tuple[tuple[int, _Spend], ...]  # (day of the 30-day cycle, spend)
    cash: tuple[int, ...]  # ATM withdrawal amounts
    groceries: tuple[_Spend, ...]
    dining: tuple[_Spend, ...]
    transport: tuple[_Spend, ...]
    shopping: tuple[_Spend, ...]
    refund_merchant: str | None  # a pending refund (credit) on the anchor day


_PROFILES: tuple[_Profile, ...] = (
    _Profile(
        customer=DemoCustomer("layla", "demo-layla-2026", "Layla Haddad", "Layla Haddad", "ليلى حداد", "en"),
        country="JO",
        current_currency=Currency.JOD,
        savings_currency=Currency.USD,
        savings_rate=Decimal("1.41"),
        employer="Petra Digital Solutions",
        salary=1_450_000,
        savings_transfer=200_000,
        card_brand="Visa",
        payees=(("Ahmad Nasser", "petra-jo"), ("Rana Haddad", "amanah-jo")),
        monthly_transfers=((30, 2, "Ahmad Nasser", 350_000), (60, 45, "Rana Haddad", 75_000)),
        utilities=(
            (10, ("JEPCO", 25_000, 60_000)),
            (12, ("Orange Jordan", 15_000, 30_000)),
            (17, ("Miyahuna", 8_000, 20_000)),
        ),
        cash=(20_000, 50_000, 100_000),
        groceries=(("Carrefour", 6_000, 45_000), ("Cozmo", 5_000, 35_000), ("Safeway", 4_000, 30_000)),
        dining=(
            ("Starbucks", 3_000, 8_000),
            ("Shawerma Reem", 2_500, 7_000),
            ("Talabat", 6_000, 22_000),
            ("Hashem Restaurant", 4_000, 12_000),
        ),
        transport=(("Careem", 1_500, 7_000), ("Uber", 1_500, 8_000), ("Total Jordan", 20_000, 40_000)),
        shopping=(("Amazon", 10_000, 60_000), ("Noon", 8_000, 45_000)),
        refund_merchant="Amazon",
    ),
    _Profile(
        customer=DemoCustomer("omar", "demo-omar-2026", "عمر الراشد", "Omar Al-Rashid", "عمر الراشد", "ar"),
        country="SA",
        current_currency=Currency.SAR,
        savings_currency=Currency.SAR,
        savings_rate=Decimal(1),
        employer="Riyadh Gulf Engineering",
        salary=1_650_000,
        savings_transfer=300_000,
        card_brand="Mastercard",
        payees=(
            ("Noura Al-Rashid", "amanah-sa"),
            ("Khalid Al-Otaibi", "najd-sa"),
            ("Faisal Trading Est.", "redsea-sa"),
        ),
        monthly_transfers=(
            (30, 5, "Noura Al-Rashid", 200_000),
            (60, 20, "Faisal Trading Est.", 150_000),
            (90, 50, "Khalid Al-Otaibi", 80_000),
        ),
        utilities=(
            (10, ("Saudi Electricity", 15_000, 60_000)),
            (12, ("STC", 15_000, 30_000)),
            (17, ("National Water Company", 5_000, 15_000)),
        ),
        cash=(20_000, 30_000, 50_000),
        groceries=(
            ("Tamimi Markets", 6_000, 45_000),
            ("Panda", 5_000, 40_000),
            ("Danube", 8_000, 50_000),
            ("Lulu", 5_000, 35_000),
        ),
        dining=(("Al Baik", 2_500, 9_000), ("Starbucks", 2_000, 6_000), ("Jahez", 4_000, 18_000)),
        transport=(("Careem", 1_500, 6_000), ("Uber", 1_500, 7_000), ("Aldrees", 6_000, 15_000)),
        shopping=(("Amazon", 5_000, 60_000), ("Noon", 5_000, 50_000), ("Jarir Bookstore", 4_000, 30_000)),
        refund_merchant=None,
    ),
    _Profile(
        customer=DemoCustomer("sara", "demo-sara-2026", "Sara Khalil", "Sara Khalil", "سارة خليل", "en"),
        country="AE",
        current_currency=Currency.AED,
        savings_currency=Currency.USD,
        savings_rate=Decimal("0.2723"),
        employer="Marina Health Clinics",
        salary=2_100_000,
        savings_transfer=250_000,
        card_brand="Visa",
        payees=(
            ("Al Noor Properties LLC", "heritage-ae"),
            ("Mariam Khalil", "crescent-ae"),
            ("Layla Haddad", "amanah-jo"),
        ),
        monthly_transfers=(
            (30, 2, "Al Noor Properties LLC", 750_000),
            (30, 20, "Mariam Khalil", 100_000),
            (60, 40, "Layla Haddad", 50_000),
        ),
        utilities=((10, ("DEWA", 35_000, 90_000)), (12, ("du", 25_000, 45_000))),
        cash=(20_000, 50_000),
        groceries=(
            ("Carrefour", 6_000, 45_000),
            ("Lulu", 5_000, 35_000),
            ("Spinneys", 8_000, 50_000),
            ("Waitrose", 8_000, 40_000),
        ),
        dining=(
            ("Starbucks", 2_000, 6_000),
            ("Tim Hortons", 1_500, 5_000),
            ("Deliveroo", 4_000, 20_000),
            ("Talabat", 4_000, 18_000),
        ),
        transport=(("Careem", 2_000, 9_000), ("Uber", 2_000, 9_000), ("RTA Nol", 5_000, 10_000)),
        shopping=(("Amazon", 5_000, 70_000), ("Noon", 5_000, 50_000), ("Namshi", 10_000, 40_000)),
        refund_merchant="Noon",
    ),
)

_DEMO_SEED = "amanah-demo-2026"


def demo_usernames() -> tuple[str, ...]:
    return tuple(p.customer.username for p in _PROFILES)


def default_anchor() -> date:
    """Today in UTC: the demo history ends today unless told otherwise."""
    return datetime.now(UTC).date()


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(count))


def make_iban(country: str, bank_code: str, rng: random.Random) -> str:
    """A structurally valid IBAN (country format and mod-97 check digits) with a random account."""
    if country == "JO":  # JOkk + bank (4 letters) + branch (4 digits) + account (18)
        bban = bank_code + "0010" + _digits(rng, 18)
    elif country == "SA":  # SAkk + bank (2 digits) + account (18)
        bban = bank_code + _digits(rng, 18)
    elif country == "AE":  # AEkk + bank (3 digits) + account (16 digits)
        bban = bank_code + _digits(rng, 16)
    else:
        raise ValueError(f"no IBAN format for {country}")
    iban = country + stdnum.iban.calc_check_digits(country + "00" + bban) + bban
    return str(stdnum.iban.validate(iban))


def _amount(rng: random.Random, low: int, high: int, currency: Currency) -> int:
    step = 5 if currency.exponent == 3 else 1  # JOD amounts end in 0 or 5 fils
    return rng.randrange(low, high + 1, step)


def _convert(minor: int, source: Currency, target: Currency, rate: Decimal) -> int:
    if source is target:
        return minor
    value = Decimal(minor).scaleb(-source.exponent) * rate
    return int(value.scaleb(target.exponent).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


@functools.lru_cache(maxsize=8)
def demo_bank(anchor: date) -> DemoBank:
    """The demo bank whose history ends on ``anchor``. Pure and deterministic."""
    customers_: list[DemoCustomer] = []
    accounts_: list[DemoAccount] = []
    cards_: list[DemoCard] = []
    payees_: list[DemoPayee] = []
    transactions_: list[DemoTransaction] = []
    static = random.Random(f"{_DEMO_SEED}:static")  # noqa: S311 - demo data, not security
    for profile in _PROFILES:
        c = profile.customer
        customers_.append(c)
        home = _BANKS[f"amanah-{profile.country.lower()}"]
        current = DemoAccount(
            key=f"{c.username}.current",
            username=c.username,
            kind=AccountKind.CURRENT,
            name="Current account",
            iban=make_iban(profile.country, home[2], static),
            currency=profile.current_currency,
        )
        savings = DemoAccount(
            key=f"{c.username}.savings",
            username=c.username,
            kind=AccountKind.SAVINGS,
            name=f"Savings account ({profile.savings_currency.code})",
            iban=make_iban(profile.country, home[2], static),
            currency=profile.savings_currency,
        )
        accounts_ += [current, savings]
        pan = _TEST_PANS[c.username]
        assert stdnum.luhn.is_valid(pan)
        cards_.append(
            DemoCard(
                username=c.username,
                account_key=current.key,
                token="tok_" + "".join(static.choice(string.ascii_lowercase) for _ in range(24)),
                last4=pan[-4:],
                brand=profile.card_brand,
                status=CardStatus.ACTIVE,
                expires=f"{anchor.month:02d}/{(anchor.year + 3) % 100:02d}",
            )
        )
        for name, bank_key in profile.payees:
            bank_name, bic, code = _BANKS[bank_key]
            country = bic[4:6]
            payees_.append(
                DemoPayee(
                    username=c.username,
                    name=name,
                    iban=make_iban(country, code, static),
                    bank_name=bank_name,
                    bic=str(stdnum.bic.validate(bic)),
                )
            )
        transactions_ += _history(profile, current, savings, anchor)
    return DemoBank(
        anchor=anchor,
        customers=tuple(customers_),
        accounts=tuple(accounts_),
        cards=tuple(cards_),
        payees=tuple(payees_),
        transactions=tuple(transactions_),
    )


def _history(
    profile: _Profile, current: DemoAccount, savings: DemoAccount, anchor: date
) -> list[DemoTransaction]:
    """Six months of one customer's transactions, in booking order, ending on ``anchor``."""
    rng = random.Random(f"{_DEMO_SEED}:{profile.customer.username}")  # noqa: S311 - demo data
    cur = profile.current_currency
    out: list[DemoTransaction] = []

    def add(account: DemoAccount, day: date, merchant: str, category: str, minor: int, pending: bool) -> None:
        out.append(
            DemoTransaction(
                account_key=account.key,
                booked_on=day,
                merchant=merchant,
                category=category,
                amount=Money(minor, account.currency),
                status=TransactionStatus.PENDING if pending else TransactionStatus.BOOKED,
                reference=f"DEMO-{profile.customer.username.upper()}-{len(out) + 1:05d}",
            )
        )

    first = anchor - timedelta(days=HISTORY_DAYS - 1)
    for i in range(HISTORY_DAYS):
        day = first + timedelta(days=i)
        card_pending = i >= HISTORY_DAYS - PENDING_DAYS
        cycle = i % 30
        if cycle == 0:
            add(current, day, profile.employer, "salary", profile.salary, False)
        for every, offset, payee, amount in profile.monthly_transfers:
            if i % every == offset:
                add(current, day, f"Transfer to {payee}", "transfers", -amount, False)
        if cycle == 3:
            add(current, day, "Transfer to savings", "savings", -profile.savings_transfer, False)
            credited = _convert(profile.savings_transfer, cur, savings.currency, profile.savings_rate)
            add(savings, day, "Transfer from current account", "savings", credited, False)
        if i % 90 == 89:
            add(savings, day, "Savings profit payout", "interest", rng.randrange(500, 2_500), False)
        for utility_day, (merchant, low, high) in profile.utilities:
            if cycle == utility_day:
                add(current, day, merchant, "utilities", -_amount(rng, low, high, cur), False)
        if i % 14 == 6:
            add(current, day, "ATM withdrawal", "cash", -rng.choice(profile.cash), False)
        for category, chance, spends in (
            ("groceries", 0.30, profile.groceries),
            ("dining", 0.35, profile.dining),
            ("transport", 0.40, profile.transport),
            ("shopping", 0.12, profile.shopping),
        ):
            roll = rng.random()
            merchant, low, high = rng.choice(spends)
            minor = _amount(rng, low, high, cur)
            if roll < chance:
                add(current, day, merchant, category, -minor, card_pending)
    # Always something pending on the anchor day: a ride, and for some a refund (a pending credit).
    merchant, low, high = profile.transport[0]
    add(current, anchor, merchant, "transport", -_amount(rng, low, high, cur), True)
    if profile.refund_merchant is not None:
        add(current, anchor, profile.refund_merchant, "shopping", _amount(rng, 5_000, 20_000, cur), True)
    return out


# -- loading it -------------------------------------------------------------------------------------


def seed_demo(engine: Engine, anchor: date | None = None, *, reset: bool = False) -> bool:
    """Load the demo bank into the database; returns True when anything was written.

    Idempotent: a demo customer who already exists is left alone, so seeding twice changes nothing.
    With ``reset=True`` each demo customer's accounts, cards (and their status history), payees and
    transactions are deleted and rebuilt from ``demo_bank(anchor)``; the customer row itself is kept
    (updated in place) so its id, and anything linked to it such as conversations, stays valid.
    The whole seed is one transaction, serialised against concurrent seeders.
    """
    bank = demo_bank(anchor or default_anchor())
    now = datetime.now(UTC)
    with write_engine(engine).begin() as conn:
        advisory_lock(conn, "amanah:demo-seed")
        existing = {
            row.username: int(row.id)
            for row in conn.execute(
                select(customers.c.id, customers.c.username).where(customers.c.username.in_(bank.usernames))
            )
        }
        targets = [c for c in bank.customers if reset or c.username not in existing]
        if not targets:
            return False
        if reset and existing:
            _delete_banking_rows(conn, existing.values())
        for customer in targets:
            values = {
                "display_name": customer.display_name,
                "language": customer.language,
                "password_hash": hash_password(customer.password),
            }
            if customer.username in existing:
                conn.execute(
                    update(customers).where(customers.c.id == existing[customer.username]).values(values)
                )
            else:
                result = conn.execute(
                    customers.insert().values(username=customer.username, created_at=now, **values)
                )
                assert result.inserted_primary_key is not None
                existing[customer.username] = int(result.inserted_primary_key[0])
        _insert_banking_rows(conn, bank, {c.username: existing[c.username] for c in targets}, now)
    return True


def _delete_banking_rows(conn: Connection, customer_ids: Iterable[int]) -> None:
    ids = list(customer_ids)
    account_ids = select(accounts.c.id).where(accounts.c.customer_id.in_(ids)).scalar_subquery()
    card_ids = select(cards.c.id).where(cards.c.customer_id.in_(ids)).scalar_subquery()
    conn.execute(delete(card_status_changes).where(card_status_changes.c.card_id.in_(card_ids)))
    conn.execute(delete(cards).where(cards.c.customer_id.in_(ids)))
    conn.execute(delete(core_transactions).where(core_transactions.c.account_id.in_(account_ids)))
    conn.execute(delete(payees).where(payees.c.customer_id.in_(ids)))
    conn.execute(delete(accounts).where(accounts.c.customer_id.in_(ids)))


def _insert_banking_rows(
    conn: Connection, bank: DemoBank, customer_ids: dict[str, int], now: datetime
) -> None:
    account_ids: dict[str, int] = {}
    for account in bank.accounts:
        if account.username not in customer_ids:
            continue
        result = conn.execute(
            accounts.insert().values(
                customer_id=customer_ids[account.username],
                kind=account.kind.value,
                name=account.name,
                iban=account.iban,
                currency=account.currency.code,
            )
        )
        assert result.inserted_primary_key is not None
        account_ids[account.key] = int(result.inserted_primary_key[0])
    card_rows = [
        {
            "customer_id": customer_ids[card.username],
            "account_id": account_ids[card.account_key],
            "token": card.token,
            "last4": card.last4,
            "brand": card.brand,
            "status": card.status.value,
            "expires": card.expires,
        }
        for card in bank.cards
        if card.username in customer_ids
    ]
    payee_rows = [
        {
            "customer_id": customer_ids[p.username],
            "name": p.name,
            "iban": p.iban,
            "bank_name": p.bank_name,
            "bic": p.bic,
        }
        for p in bank.payees
        if p.username in customer_ids
    ]
    tx_rows = [
        {
            "account_id": account_ids[tx.account_key],
            "booked_on": tx.booked_on,
            "merchant": tx.merchant,
            "category": tx.category,
            "amount_minor": tx.amount.minor,
            "currency": tx.amount.currency.code,
            "status": tx.status.value,
            "reference": tx.reference,
            "created_at": now,
        }
        for tx in bank.transactions
        if tx.account_key in account_ids
    ]
    for table, rows in ((cards, card_rows), (payees, payee_rows), (core_transactions, tx_rows)):
        if rows:
            conn.execute(table.insert(), rows)


def load_demo_in_memory(
    bank: DemoBank, core: InMemoryCoreBanking, auth: InMemoryAuthenticator | None = None
) -> None:
    """Load ``bank`` into empty in-memory fakes (and set the demo passwords on ``auth``)."""
    account_ids: dict[str, int] = {}
    customer_ids: dict[str, int] = {}
    for c in bank.customers:
        customer_ids[c.username] = core.add_customer(c.username, c.display_name, c.language).id
        if auth is not None:
            auth.set_password(c.username, c.password)
    for a in bank.accounts:
        account_ids[a.key] = core.add_account(customer_ids[a.username], a.kind, a.name, a.iban, a.currency).id
    for card in bank.cards:
        core.add_card(
            customer_ids[card.username],
            account_ids[card.account_key],
            card.token,
            card.last4,
            card.brand,
            card.status,
        )
    for p in bank.payees:
        core.add_payee(customer_ids[p.username], p.name, p.iban, p.bank_name, p.bic)
    for tx in bank.transactions:
        core.add_transaction(
            account_ids[tx.account_key], tx.booked_on, tx.merchant, tx.category, tx.amount, tx.status
        )


def demo_in_memory(anchor: date | None = None) -> tuple[InMemoryCoreBanking, InMemoryAuthenticator]:
    """Fresh in-memory fakes holding the demo bank whose history ends on ``anchor`` (default today)."""
    core = InMemoryCoreBanking()
    auth = InMemoryAuthenticator(core)
    load_demo_in_memory(demo_bank(anchor or default_anchor()), core, auth)
    return core, auth
