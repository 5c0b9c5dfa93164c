"""`amanah audit verify|report` on a real database, and `amanah serve` refusing a broken agreement."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete
from typer.testing import CliRunner

from amanah.adapters.privacy.agreements import PACKAGED
from amanah.adapters.privacy.ledger import Disclosure, SqlDisclosureLedger
from amanah.adapters.storage.db import make_engine, write_engine
from amanah.adapters.storage.schema_guard import disclosures
from amanah.adapters.storage.sql_core import SqlCoreBanking
from amanah.domain.categories import DataCategory, Treatment
from amanah.domain.conversation import Channel
from amanah.entrypoints.cli import app

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
runner = CliRunner()


def invoke(url: str, *args: str, **env: str):  # type: ignore[no-untyped-def]
    return runner.invoke(
        app, list(args), env={"AMANAH_DATABASE_URL": url, "AMANAH_LOG_LEVEL": "WARNING", **env}
    )


@pytest.fixture
def url(seeded_url: str) -> str:
    """The demo bank with five disclosures about layla (four on Messenger, one on WhatsApp)."""
    engine = make_engine(seeded_url)
    try:
        layla = SqlCoreBanking(engine).customer_by_username("layla").id
        ledger = SqlDisclosureLedger(engine)
        for i, (channel, category, treatment) in enumerate(
            [
                (Channel.MESSENGER, DataCategory.ACCOUNT_BALANCE, Treatment.SECURE_LINK),
                (Channel.MESSENGER, DataCategory.CARD_STATUS, Treatment.ALLOW),
                (Channel.MESSENGER, DataCategory.CARD_NUMBER, Treatment.MASK),
                (Channel.MESSENGER, DataCategory.ACCOUNT_BALANCE, Treatment.SECURE_LINK),
                (Channel.WHATSAPP, DataCategory.TRANSACTION_DETAIL, Treatment.SECURE_LINK),
            ]
        ):
            ledger.append(
                None,
                Disclosure(
                    at=T0 + timedelta(hours=i),
                    channel=channel,
                    customer_id=layla,
                    user_id="psid-layla",
                    categories={DataCategory.PUBLIC: Treatment.ALLOW, category: treatment},
                    agreement_id=f"meta-{channel.value}",
                    agreement_version="2026-11-01",
                    body_sha256=f"{i:064x}",
                ),
            )
    finally:
        engine.dispose()
    return seeded_url


def test_verify_passes_then_names_a_deleted_record(url: str) -> None:
    """An intact ledger exits 0 and prints its head; after a deletion it exits 1 naming the record."""
    ok = invoke(url, "audit", "verify")
    assert ok.exit_code == 0, ok.output
    assert "intact: 5 record(s)" in ok.output
    head = ok.output.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    assert head.startswith("5:")
    engine = make_engine(url)
    try:
        with write_engine(engine).begin() as conn:
            conn.execute(delete(disclosures).where(disclosures.c.seq == 2))
    finally:
        engine.dispose()
    bad = invoke(url, "audit", "verify")
    assert bad.exit_code == 1
    assert "deleted: record(s) #2 are missing" in bad.output
    assert "Traceback" not in bad.output
    as_json = json.loads(invoke(url, "audit", "verify", "--json").output)
    assert as_json["ok"] is False and as_json["problems"][0]["kind"] == "deleted"


def test_verify_with_an_anchor_catches_a_truncated_ledger(url: str) -> None:
    """Deleting the newest record passes the chain alone but fails against the kept anchor."""
    head = json.loads(invoke(url, "audit", "verify", "--json").output)["head"]
    engine = make_engine(url)
    try:
        with write_engine(engine).begin() as conn:
            conn.execute(delete(disclosures).where(disclosures.c.seq == 5))
    finally:
        engine.dispose()
    assert invoke(url, "audit", "verify").exit_code == 0
    anchored = invoke(url, "audit", "verify", "--anchor", head)
    assert anchored.exit_code == 1 and "anchored record #5 is gone" in anchored.output
    assert invoke(url, "audit", "verify", "--anchor", "nonsense").exit_code == 2


def test_report_shows_categories_per_platform(url: str) -> None:
    """The report lists, per platform, each category, its treatment, how often, first and last."""
    data = json.loads(invoke(url, "audit", "report", "--customer", "layla", "--json").output)
    assert data["username"] == "layla"
    messenger, whatsapp = data["channels"]
    assert (messenger["channel"], messenger["messages"], whatsapp["messages"]) == ("messenger", 4, 1)
    (balance,) = messenger["withheld"]
    assert (balance["category"], balance["treatment"], balance["count"]) == (
        "account.balance",
        "secure_link",
        2,
    )
    assert (balance["first_at"], balance["last_at"]) == (
        "2026-03-10T12:00:00.000000Z",
        "2026-03-10T15:00:00.000000Z",
    )
    assert {u["category"] for u in messenger["received"]} == {"card.number", "card.status"}
    only = json.loads(
        invoke(url, "audit", "report", "--customer", "layla", "--channel", "whatsapp", "--json").output
    )
    assert [c["channel"] for c in only["channels"]] == ["whatsapp"]
    table = invoke(url, "audit", "report", "--customer", "layla")
    assert table.exit_code == 0 and "account.balance" in table.output and "messenger" in table.output
    nothing = invoke(url, "audit", "report", "--customer", "omar")
    assert "no message about omar" in nothing.output


def test_report_refuses_unknown_customers_and_channels(url: str) -> None:
    """A wrong username or channel is a one-line error, never a traceback."""
    unknown = invoke(url, "audit", "report", "--customer", "mallory")
    assert unknown.exit_code == 1 and "no customer named" in unknown.output
    bad = invoke(url, "audit", "report", "--customer", "layla", "--channel", "telegram")
    assert bad.exit_code == 2 and "--channel must be one of" in bad.output


def test_serve_stops_on_a_broken_agreement_without_traceback(tmp_path: Path) -> None:
    """`amanah serve` with a contradictory agreement prints the problem and exits non-zero."""
    folder = tmp_path / "agreements"
    shutil.copytree(PACKAGED, folder)
    path = folder / "whatsapp.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            'purposes = ["service", "security"]', 'purposes = ["advertising"]'
        ),
        encoding="utf-8",
    )
    result = invoke(f"sqlite:///{tmp_path / 'x.db'}", "serve", AMANAH_AGREEMENTS_DIR=str(folder))
    assert result.exit_code == 2
    assert "cannot start: invalid data-sharing agreements" in result.output
    assert (
        'whatsapp.toml: [categories."card.status"]: financial data may never serve advertising'
        in result.output
    )
    assert "Traceback" not in result.output
