from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.support.app import ADMIN_HEADERS, configure, release


@pytest.fixture(params=["sqlite", "postgresql"])
def api_client(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app in this process on a fresh home, with its database on SQLite and on PostgreSQL, and the
    embedded SQLite broker (messages are published for real; no worker consumes them here, so jobs
    stay queued). It sends the admin key of tenant "default"."""
    database = str(request.getfixturevalue("postgres_url")) if request.param == "postgresql" else None
    yield from _client(tmp_path, monkeypatch, database)


@pytest.fixture
def sqlite_api_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The same app on SQLite alone, for a subject that reads through services tested on both databases."""
    yield from _client(tmp_path, monkeypatch, None)


def _client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str | None) -> Iterator[TestClient]:
    configure(
        tmp_path, monkeypatch, database, max_epochs="500", max_upload_bytes=str(2 * 1024 * 1024), max_columns="100"
    )
    with TestClient(create_app(), headers=ADMIN_HEADERS) as client:
        yield client
    release()
