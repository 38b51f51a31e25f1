from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import Stack, start_stack


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The same tests run embedded (SQLite database, SQLite broker: the `make up` default) and
    distributed (PostgreSQL + Redis), each against real API and worker processes."""
    home = Path(tmp_path_factory.mktemp(f"stack-{request.param}"))
    if request.param == "embedded":
        running = start_stack(home, database_url=None, broker_url=None)
    else:
        running = start_stack(
            home,
            database_url=str(request.getfixturevalue("postgres_module_url")),
            broker_url=str(request.getfixturevalue("redis_module_url")),
        )
    yield running
    running.stop()
