from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.celery_app import get_celery, prepare_sqlite_broker
from core.db import get_engine, get_session_factory
from core.migrate import upgrade
from core.settings import get_settings


def _clear_process_caches() -> None:
    for cached in (get_settings, get_engine, get_session_factory, get_celery):
        cached.cache_clear()


@pytest.fixture(params=["sqlite", "postgresql"])
def api_client(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app in this process on a fresh home, with its database on SQLite and on PostgreSQL, and the
    embedded SQLite broker (messages are published for real; no worker consumes them here, so jobs
    stay queued)."""
    monkeypatch.delenv("REGTRAIN_BROKER_URL", raising=False)
    monkeypatch.delenv("REGTRAIN_DATABASE_URL", raising=False)
    if request.param == "postgresql":
        monkeypatch.setenv("REGTRAIN_DATABASE_URL", str(request.getfixturevalue("postgres_url")))
    monkeypatch.setenv("REGTRAIN_HOME", str(tmp_path))
    monkeypatch.setenv("REGTRAIN_MAX_EPOCHS", "500")
    monkeypatch.setenv("REGTRAIN_MAX_UPLOAD_BYTES", str(2 * 1024 * 1024))
    monkeypatch.setenv("REGTRAIN_MAX_COLUMNS", "100")
    _clear_process_caches()
    settings = get_settings()
    settings.ensure_home()
    upgrade(settings.resolved_database_url)
    prepare_sqlite_broker(settings)
    with TestClient(create_app()) as client:
        yield client
    get_engine().dispose()
    _clear_process_caches()
