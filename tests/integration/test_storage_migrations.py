"""Alembic migrations: they apply on every backend, are idempotent and match schema.py."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from amanah.adapters.storage.db import make_engine
from amanah.adapters.storage.migrate import (
    MIGRATIONS_DIR,
    alembic_config,
    current_heads,
    full_metadata,
    migrate,
    migration_transaction,
    script_heads,
)
from amanah.adapters.storage.schema import accounts, core_transactions, customers
from amanah.adapters.storage.schema_linking import channel_bindings, channel_consents

CORE_TABLES = {
    "customers",
    "accounts",
    "cards",
    "card_status_changes",
    "payees",
    "core_transactions",
    "conversations",
    "turns",
}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrate_creates_every_table_and_records_the_heads(db_url: str) -> None:
    """migrate() on an empty database creates the core tables and stamps every head."""
    assert current_heads(db_url) == set()
    migrate(db_url)
    assert CORE_TABLES <= _tables(db_url)
    assert current_heads(db_url) == script_heads()


def test_migrate_twice_is_a_no_op_that_keeps_data(db_url: str) -> None:
    """A second migrate() changes nothing and loses no rows."""
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                customers.insert().values(
                    username="x",
                    display_name="X",
                    language="en",
                    password_hash="h",
                    created_at=datetime.now(UTC),
                )
            )
        migrate(db_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM customers")).scalar() == 1
    finally:
        engine.dispose()
    assert current_heads(db_url) == script_heads()


def test_concurrent_migrations_both_succeed(db_url: str) -> None:
    """Two processes starting at once may both call migrate(): the lock serialises them."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate(db_url)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert current_heads(db_url) == script_heads()


def test_migrated_schema_matches_metadata(engine: Engine) -> None:
    """The tables the migrations build are the ones the schema modules declare (columns, types, indexes)."""
    metadata = full_metadata()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "target_metadata": metadata})
        diffs = compare_metadata(context, metadata)
    assert diffs == []


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    """An account for a customer that does not exist is refused, on SQLite too."""
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            accounts.insert().values(customer_id=999, kind="current", name="x", iban="X", currency="USD")
        )


def test_core_transactions_refuse_updates(seeded_engine: Engine) -> None:
    """core_transactions is append-only: the database itself refuses an UPDATE."""
    with pytest.raises(DBAPIError, match="append-only"), seeded_engine.begin() as conn:
        conn.execute(core_transactions.update().values(amount_minor=1))


def test_unknown_statuses_are_refused(engine: Engine) -> None:
    """Check constraints keep statuses to the known values."""
    with engine.begin() as conn:
        customer_id = conn.execute(
            customers.insert().values(
                username="c", display_name="C", language="en", password_hash="h", created_at=datetime.now(UTC)
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        account_id = conn.execute(
            accounts.insert().values(
                customer_id=customer_id, kind="current", name="x", iban="X1", currency="USD"
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            core_transactions.insert().values(
                account_id=account_id,
                booked_on=date(2026, 1, 1),
                merchant="m",
                category="c",
                amount_minor=-1,
                currency="USD",
                status="reversed",
                reference="r1",
                created_at=datetime.now(UTC),
            )
        )


def test_downgrade_to_base_then_upgrade_again(migrated_url: str) -> None:
    """The initial migration can be undone and redone cleanly."""
    config = alembic_config(migrated_url)
    with migration_transaction(migrated_url) as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert not (CORE_TABLES & _tables(migrated_url))
    migrate(migrated_url)
    assert CORE_TABLES <= _tables(migrated_url)


def test_consent_methods_migration_keeps_records_bindings_and_the_trigger(db_url: str) -> None:
    """0006 widens the consent method check without losing a record, a binding or the withdraw-only trigger."""
    config = alembic_config(db_url)
    with migration_transaction(db_url) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003_linking")
    engine = make_engine(db_url)
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    consent = {
        "customer_id": None,
        "channel": "messenger",
        "user_id": "2000000000000002",
        "agreement_id": "meta-messenger",
        "agreement_version": "2026-11-01",
        "given_at": now,
    }
    try:
        with engine.begin() as conn:
            consent["customer_id"] = conn.execute(
                customers.insert().values(
                    username="c", display_name="C", language="en", password_hash="h", created_at=now
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            old_id = conn.execute(
                channel_consents.insert().values(**consent, method="messenger_account_linking")
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                channel_bindings.insert().values(
                    channel="messenger",
                    user_id="2000000000000002",
                    customer_id=consent["customer_id"],
                    consent_id=old_id,
                    linked_at=now,
                )
            )
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(channel_consents.insert().values(**consent, method="messenger_extensions"))
        migrate(db_url)
        with engine.begin() as conn:
            conn.execute(channel_consents.insert().values(**consent, method="messenger_extensions"))
        with engine.connect() as conn:
            rows = conn.execute(
                select(channel_consents.c.id, channel_consents.c.method).order_by(channel_consents.c.id)
            ).all()
            [binding] = conn.execute(select(channel_bindings.c.consent_id)).all()
        assert [r.method for r in rows] == ["messenger_account_linking", "messenger_extensions"]
        assert rows[0].id == old_id
        assert binding.consent_id == old_id
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(channel_consents.insert().values(**consent, method="carrier_pigeon"))
        with pytest.raises(DBAPIError, match="only be withdrawn"), engine.begin() as conn:
            conn.execute(channel_consents.update().values(method="operator_cli"))
        with pytest.raises(IntegrityError), engine.begin() as conn:  # foreign keys still point at it
            conn.execute(channel_consents.delete().where(channel_consents.c.id == old_id))
    finally:
        engine.dispose()
    assert current_heads(db_url) == script_heads()


def test_migration_files_ship_with_the_package() -> None:
    """env.py, the script template and 0001_initial live inside the package (no alembic.ini)."""
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert (MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()
    assert (MIGRATIONS_DIR / "__init__.py").is_file()
    assert (MIGRATIONS_DIR / "versions" / "__init__.py").is_file()
