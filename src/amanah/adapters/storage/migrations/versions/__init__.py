"""Alembic revision scripts. A package only so that the files ship in the wheel."""
