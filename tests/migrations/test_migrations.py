"""Migrations match the tables in models/ and run both ways, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from core.db import make_engine
from core.migrate import alembic_config, downgrade, upgrade
from models import Base


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_head_matches_the_models(database_url: str) -> None:
    upgrade(database_url)
    assert table_names(database_url) == set(Base.metadata.tables)
    # Raises if autogenerate would write anything: a model change without its migration.
    command.check(alembic_config(database_url))


def test_downgrade_to_base_and_up_again(database_url: str) -> None:
    upgrade(database_url)
    downgrade(database_url, "base")
    assert table_names(database_url) == set()
    upgrade(database_url)
    assert table_names(database_url) == set(Base.metadata.tables)
