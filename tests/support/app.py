"""Pointing this process's settings at a fresh home, the way a deployment's environment would."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.celery_app import get_celery, prepare_sqlite_broker
from core.db import get_engine, get_session_factory
from core.migrate import upgrade
from core.settings import Settings, get_settings
from models import DEFAULT_TENANT, Tenant

# The admin key of every test deployment (REGTRAIN_ADMIN_KEY): the first start makes it tenant
# "default"'s admin key, as a deployment's secret would.
ADMIN_KEY = "rt_test-admin-key-3f9c1e7a2b5d48e6a0c4f1b7d9e2a6c5"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


def clear_process_caches() -> None:
    for cached in (get_settings, get_engine, get_session_factory, get_celery):
        cached.cache_clear()


def configure(
    home: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None = None, **settings: str
) -> Settings:
    """A migrated database (SQLite under `home` unless given) and the embedded SQLite broker."""
    monkeypatch.delenv("REGTRAIN_BROKER_URL", raising=False)
    monkeypatch.delenv("REGTRAIN_DATABASE_URL", raising=False)
    if database_url:
        monkeypatch.setenv("REGTRAIN_DATABASE_URL", database_url)
    monkeypatch.setenv("REGTRAIN_HOME", str(home))
    monkeypatch.setenv("REGTRAIN_ADMIN_KEY", ADMIN_KEY)
    # A test reading the event stream of a job that no worker runs would otherwise wait out the default.
    settings.setdefault("events_max_stream_seconds", "1")
    for name, value in settings.items():
        monkeypatch.setenv(f"REGTRAIN_{name.upper()}", value)
    clear_process_caches()
    configured = get_settings()
    configured.ensure_home()
    upgrade(configured.resolved_database_url)
    prepare_sqlite_broker(configured)
    return configured


def release() -> None:
    get_engine().dispose()
    clear_process_caches()


def default_tenant_id(session: Session) -> str:
    """The tenant the migration makes and the admin key belongs to."""
    return session.scalars(select(Tenant.id).where(Tenant.name == DEFAULT_TENANT)).one()
