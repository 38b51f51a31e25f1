"""Readiness: can this process reach the database, the broker and the object store right now?"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.celery_app import get_celery
from core.errors import StoreUnavailable
from core.settings import Settings
from core.storage import get_store

BROKER_CHECK_TIMEOUT_SECONDS = 2.0


def check_readiness(session: Session, settings: Settings) -> dict[str, str]:
    checks = {}
    try:
        session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        with get_celery().connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_CHECK_TIMEOUT_SECONDS)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"unreachable: {type(exc).__name__}"
    try:
        get_store(settings).probe()
        checks["store"] = "ok"
    except StoreUnavailable:
        checks["store"] = "unreachable"
    return checks


# Without these nothing works; without the store only what reads or writes objects does (503 with
# Retry-After), and job and dataset metadata stay readable, so the process keeps serving: `degraded`.
ESSENTIAL = ("database", "broker")


def readiness_status(checks: dict[str, str]) -> str:
    if any(checks[name] != "ok" for name in ESSENTIAL):
        return "unavailable"
    return "ok" if all(value == "ok" for value in checks.values()) else "degraded"
