"""`amanah link` / `amanah unlink`: operators record and withdraw consented bindings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer.testing
from sqlalchemy import Engine

from amanah.adapters.storage.db import make_engine
from amanah.adapters.storage.sql_core import SqlCoreBanking
from amanah.adapters.storage.sql_linking import SqlLinkStore
from amanah.domain.conversation import Channel
from amanah.domain.linking import ConsentMethod, WithdrawalMethod
from amanah.entrypoints.cli import app

WA_ID = "15550002222"


@pytest.fixture
def db(seeded_url: str) -> Iterator[tuple[str, Engine]]:
    engine = make_engine(seeded_url)
    yield seeded_url, engine
    engine.dispose()


def _run(url: str, *args: str) -> typer.testing.Result:
    return typer.testing.CliRunner().invoke(
        app, list(args), env={"AMANAH_DATABASE_URL": url, "AMANAH_LOG_LEVEL": "WARNING"}
    )


def test_link_then_unlink_from_the_command_line(db: tuple[str, Engine]) -> None:
    """`link` records an operator-consented binding; `unlink` removes it and keeps the consent record."""
    url, engine = db
    store = SqlLinkStore(engine)
    sara = SqlCoreBanking(engine).customer_by_username("sara").id

    out = _run(url, "link", "--channel", "whatsapp", "--user-id", WA_ID, "--customer", "Sara")
    assert out.exit_code == 0, out.output
    assert "linked whatsapp user" in out.output
    binding = store.binding(Channel.WHATSAPP, WA_ID)
    assert binding is not None and binding.customer_id == sara
    assert binding.method is ConsentMethod.OPERATOR_CLI and binding.agreement_id == "meta-whatsapp"

    out = _run(url, "unlink", "--channel", "whatsapp", "--user-id", WA_ID)
    assert out.exit_code == 0, out.output
    assert store.binding(Channel.WHATSAPP, WA_ID) is None
    [record] = store.consents(sara)
    assert record.withdrawn_how is WithdrawalMethod.OPERATOR_CLI

    again = _run(url, "unlink", "--channel", "whatsapp", "--user-id", WA_ID)
    assert again.exit_code == 1 and "not linked" in again.output


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("link", "--channel", "webchat", "--user-id", "x", "--customer", "layla"), 2, "--channel must be"),
        (("link", "--channel", "messenger", "--user-id", "1", "--customer", "mallory"), 1, "no customer"),
        (("unlink", "--channel", "telegram", "--user-id", "1"), 2, "--channel must be"),
    ],
)
def test_link_commands_refuse_bad_input_clearly(
    db: tuple[str, Engine], args: tuple[str, ...], code: int, says: str
) -> None:
    """Unknown channels and customers fail with a message and a non-zero exit, creating nothing."""
    url, engine = db
    out = _run(url, *args)
    assert out.exit_code == code
    assert says in out.output
    assert SqlLinkStore(engine).bindings_of(SqlCoreBanking(engine).customer_by_username("layla").id) == []
