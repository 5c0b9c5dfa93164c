"""The leak test: real conversations through the Messenger webhook and the fake Graph API.

All three demo customers link their Messenger accounts and ask about balances, their accounts,
transactions, spending, their card and what Messenger knows about them. Every Send API payload the
fake Graph API recorded is then searched for each customer's balances, IBANs, card numbers and
transaction merchants and amounts, in their usual renderings. None may appear.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from amanah.adapters.channels.meta import hub_signature
from amanah.bootstrap import build
from amanah.domain.banking import TransactionQuery
from amanah.domain.money import Money
from amanah.domain.text import to_eastern_digits
from amanah.entrypoints.channels_cli import messenger_event
from amanah.settings import Settings
from tests.e2e.conftest import AMANAH, LiveServer, amanah_env, free_port, start_server

pytestmark = pytest.mark.slow

SECRET = "leak-test-app-secret"
PSIDS = {"layla": "7100000000000001", "omar": "7100000000000002", "sara": "7100000000000003"}


def renderings(amount: Money) -> set[str]:
    """An amount as a person or a formatter might write it: grouped or not, ASCII or Eastern digits."""
    d = abs(amount.decimal)
    e = amount.currency.exponent
    forms = {f"{d:.{e}f}", f"{d:,.{e}f}", f"{d:.2f}", f"{d:,.2f}"}
    if d >= 1000:
        forms |= {f"{int(d):,}", str(int(d))}
    forms |= {to_eastern_digits(f) for f in forms}
    forms |= {to_eastern_digits(f.replace(",", "٬").replace(".", "٫")) for f in forms}
    return {f for f in forms if len(f.replace(",", "").replace(".", "")) >= 3}


def iban_forms(iban: str) -> set[str]:
    compact = iban.replace(" ", "")
    grouped = " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return {compact, grouped, compact[4:], compact[-10:], to_eastern_digits(compact[-10:])}


@pytest.fixture
def stack(migrated_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    env = amanah_env(migrated_url)
    assert (
        subprocess.run([*AMANAH, "seed", "--demo"], env=env, capture_output=True, timeout=120).returncode == 0
    )
    for username, psid in PSIDS.items():
        out = subprocess.run(
            [*AMANAH, "link", "--channel", "messenger", "--user-id", psid, "--customer", username],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
    fake_port = free_port()
    fake = subprocess.Popen(
        [*AMANAH, "fake-graph", "--port", str(fake_port), "--record", str(tmp_path / "calls.jsonl")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    fake_url = f"http://127.0.0.1:{fake_port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{fake_url}/_fake/calls", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    server = start_server(
        migrated_url,
        tmp_path,
        AMANAH_MESSENGER_APP_SECRET=SECRET,
        AMANAH_MESSENGER_VERIFY_TOKEN="leak-verify",
        AMANAH_MESSENGER_PAGE_ACCESS_TOKEN="leak-page-token",
        AMANAH_MESSENGER_GRAPH_URL=f"{fake_url}/v23.0",
    )
    try:
        yield server, fake_url
    finally:
        for proc in (server.process, fake):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def conversation(merchant: str, arabic: bool) -> list[str]:
    english = [
        "hello",
        "what's my balance?",
        "what's in my savings?",
        "show my last 10 transactions",
        f"what did I spend at {merchant} last month",
        "how much did I spend this month",
        "how much on groceries last month",
        "what is my IBAN?",
        "freeze my card",
        "no",
        "what does Messenger know about me?",
    ]
    if not arabic:
        return english
    return [
        "مرحبا",
        "كم رصيدي؟",
        "كم في حساب التوفير؟",
        "اعرض آخر ١٠ عمليات",
        f"كم صرفت في {merchant} الشهر الماضي",
        "كم صرفت هذا الشهر",
        "ماذا يعرف ماسنجر عني؟",
        "جمد بطاقتي",
        "لا",
        *english[:5],
    ]


def wait_for_replies(fake_url: str, expected: int, timeout_s: float = 120) -> list[dict[str, Any]]:
    """Poll the fake until every user message got an answer and the outbox has gone quiet."""
    deadline = time.monotonic() + timeout_s
    last, stable_since = -1, time.monotonic()
    calls: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        calls = httpx.get(f"{fake_url}/_fake/calls", timeout=5).json()["calls"]
        messages = [c for c in calls if isinstance(c.get("body"), dict) and "message" in c["body"]]
        if len(calls) != last:
            last, stable_since = len(calls), time.monotonic()
        elif len(messages) >= expected and time.monotonic() - stable_since > 2.0:
            return calls
        time.sleep(0.3)
    pytest.fail(f"only {last} Send API calls after {timeout_s} s; expected replies to {expected} messages")


def test_no_financial_value_reaches_messenger(stack: tuple[LiveServer, str]) -> None:
    """I2: no balance, IBAN, card number, merchant or transaction amount appears in any Send API payload."""
    server, fake_url = stack
    container = build(Settings(database_url=server.database_url))
    core = container.core
    sent = 0
    secrets: dict[str, set[str]] = {}
    for username, psid in PSIDS.items():
        customer = core.customer_by_username(username)
        txs = core.search_transactions(TransactionQuery(customer_id=customer.id, limit=500))
        merchant = next(t.merchant for t in txs if t.amount.minor < 0)
        values: set[str] = set()
        for b in core.balances(customer.id):
            values |= renderings(b.booked) | renderings(b.available) | iban_forms(b.account.iban)
        for p in core.payees(customer.id):
            values |= iban_forms(p.iban)
        for t in txs:
            values.add(t.merchant)
            values |= renderings(t.amount)
        secrets[username] = values
        for text in conversation(merchant, arabic=customer.language == "ar"):
            body = messenger_event(psid, text)
            r = httpx.post(
                f"{server.url}/webhooks/messenger",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": hub_signature(body, SECRET),
                },
                timeout=10,
            )
            assert r.status_code == 200, r.text
            sent += 1
            time.sleep(0.05)  # one customer types one message at a time
    calls = wait_for_replies(fake_url, expected=sent)
    # What the platform sees of the customer's data is the message (ids and tokens are ours).
    payloads = [
        json.dumps(c["body"].get("message"), ensure_ascii=False)
        for c in calls
        if isinstance(c.get("body"), dict) and c["body"].get("message")
    ]
    assert payloads, "the fake Graph API recorded nothing"
    everything = "\n".join(payloads)
    assert "/secure/" in everything, "withheld answers should carry a secure link"
    leaks = sorted(
        (username, value)
        for username, values in secrets.items()
        for value in values
        if value and re.search(rf"(?<![\w.,٫٬]){re.escape(value)}(?![\w]|[.,٫٬]\d)", everything)
    )
    assert leaks == [], f"financial values reached Messenger: {leaks[:20]}"
    # Each customer got real answers (not just errors): their card's last 4 appear masked only.
    for username in PSIDS:
        for card in core.cards(core.customer_by_username(username).id):
            assert f"•••• {card.last4}" in everything or to_eastern_digits(card.last4) in everything
