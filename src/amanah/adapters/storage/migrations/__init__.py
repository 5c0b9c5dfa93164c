"""Alembic migrations of Amanah's database (run with :func:`amanah.adapters.storage.migrate.migrate`).

Adding a migration for your own tables:

* declare the tables on the shared ``metadata`` in a ``schema_<area>.py`` module next to
  ``schema.py`` (``env.py`` imports every ``schema*.py`` for autogenerate);
* add ``versions/NNNN_<area>.py`` with ``revision = "NNNN_<area>"`` and
  ``down_revision = "0001_initial"`` (branches are fine: ``migrate()`` upgrades to all heads);
* write ``op.create_table`` with explicit constraint names following ``schema.NAMING_CONVENTION``
  (``pk_<table>``, ``fk_<table>_<column>_<referred>``, ``uq_<table>_<column>``, ``ix_<table>_<column>``),
  ids as ``BigInteger().with_variant(Integer(), "sqlite")`` and timestamps as ``DateTime(timezone=True)``;
* the whole upgrade runs in one transaction on both backends, so keep each migration transactional
  (no ``CREATE INDEX CONCURRENTLY``); on SQLite avoid ``batch_alter_table`` on ``core_transactions`` and
  ``card_status_changes``: rebuilding them would drop their append-only triggers.
"""
