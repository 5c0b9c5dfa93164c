"""Alembic environment for Amanah. No alembic.ini is needed: see ``amanah.adapters.storage.migrate``.

``migrate()`` passes an open connection (already inside a transaction that holds the migration
lock) in ``config.attributes["connection"]``. When Alembic is run from its own command line
instead, the URL comes from ``sqlalchemy.url`` in the config or ``AMANAH_DATABASE_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from amanah.adapters.storage.migrate import full_metadata, migration_transaction

config = context.config
target_metadata = full_metadata()  # every schema*.py module's tables, for autogenerate


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("AMANAH_DATABASE_URL", "")
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("AMANAH_DATABASE_URL", "")
    with migration_transaction(url) as conn:
        _run(conn)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
