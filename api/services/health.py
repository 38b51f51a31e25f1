"""Readiness: can this process reach the database and the broker right now?"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.celery_app import get_celery

BROKER_CHECK_TIMEOUT_SECONDS = 2.0


def check_readiness(session: Session) -> dict[str, str]:
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
    return checks
