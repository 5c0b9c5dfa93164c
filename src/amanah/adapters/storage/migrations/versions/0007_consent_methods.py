"""Consent records may say a Messenger link was made through Messenger Extensions (``signed_request``).

Revision ID: 0007_consent_methods
Revises: 0003_linking
Create Date: 2026-12-01

Only the CHECK constraint ``ck_channel_consents_method`` changes (one more allowed value,
``messenger_extensions``); ``schema_linking.py`` derives it from ``ConsentMethod``. PostgreSQL drops
and re-adds the constraint. SQLite cannot alter a constraint, so the table is rebuilt inside the
migration's transaction: the rows are copied aside, the table is re-created from its own stored
``CREATE TABLE`` with the new list, the rows are copied back with the same ids, and its index and its
withdraw-only trigger are re-created from their stored SQL. Foreign keys from ``channel_bindings`` are
deferred meanwhile and checked at commit, so a lost row would fail the whole migration.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_consent_methods"
down_revision: str | Sequence[str] | None = "0003_linking"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "channel_consents"
_NAME = "ck_channel_consents_method"
_BEFORE = ("messenger_account_linking", "whatsapp_link", "operator_cli")
_AFTER = (*_BEFORE, "messenger_extensions")


def _check(values: tuple[str, ...]) -> str:
    return f"method IN ({', '.join(repr(v) for v in values)})"


def _set_methods(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f(_NAME), _TABLE, type_="check")
        op.create_check_constraint(op.f(_NAME), _TABLE, _check(new))
        return
    rows = bind.execute(
        sa.text("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = :t AND sql IS NOT NULL"),
        {"t": _TABLE},
    ).all()
    [create] = [r.sql for r in rows if r.type == "table"]
    others = [r.sql for r in rows if r.type in ("index", "trigger")]
    old_clause = f"CONSTRAINT {_NAME} CHECK ({_check(old)})"
    if create.count(old_clause) != 1 or not create.startswith(f"CREATE TABLE {_TABLE} ("):
        raise RuntimeError(f"{_TABLE}: unexpected schema, cannot change {_NAME}")
    new_create = create.replace(old_clause, f"CONSTRAINT {_NAME} CHECK ({_check(new)})")
    tmp = f"_amanah_tmp_{_TABLE}"
    run = bind.exec_driver_sql  # raw SQL as stored by SQLite (no bind-parameter parsing)
    run("PRAGMA defer_foreign_keys = ON")  # this transaction only: checked again at commit
    run(create.replace(f"CREATE TABLE {_TABLE} (", f"CREATE TABLE {tmp} (", 1))
    run(f"INSERT INTO {tmp} SELECT * FROM {_TABLE}")  # noqa: S608 - constant names
    run(f"DROP TABLE {_TABLE}")  # drops its index and trigger too
    run(new_create)
    run(f"INSERT INTO {_TABLE} SELECT * FROM {tmp}")  # noqa: S608 - constant names
    run(f"DROP TABLE {tmp}")
    for sql in others:
        run(sql)


def upgrade() -> None:
    _set_methods(_BEFORE, _AFTER)


def downgrade() -> None:
    _set_methods(_AFTER, _BEFORE)  # fails, changing nothing, while a record uses the new method
