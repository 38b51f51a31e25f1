from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine
from core.migrate import upgrade


@pytest.fixture
def session_factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated database (SQLite file or PostgreSQL, per `database_url`) and sessions on it."""
    upgrade(database_url)
    engine = make_engine(database_url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()
