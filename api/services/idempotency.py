"""Idempotency-Key: a repeat of a request with the same key and body gets the first response; the same
key with another body is refused; concurrent repeats make one resource. Keys expire after
REGTRAIN_IDEMPOTENCY_TTL_SECONDS (24 h)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.encoders import jsonable_encoder
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidInput
from core.settings import Settings
from models import IdempotencyKey
from models.base import utcnow

# How long a repeat waits for the first request with its key to finish before giving up with 409.
WAIT_SECONDS = 30.0
POLL_SECONDS = 0.05


def body_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(jsonable_encoder(body), sort_keys=True).encode()).hexdigest()


def _expire(session: Session, settings: Settings) -> None:
    cutoff = utcnow() - timedelta(seconds=settings.idempotency_ttl_seconds)
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    session.commit()


def _replay(session: Session, tenant_id: str, scope: str, key: str, request_hash: str) -> dict[str, Any] | None:
    """The stored response for a repeat, waiting for a first request still in progress."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        session.expire_all()
        row = session.get(IdempotencyKey, (tenant_id, scope, key))
        if row is None:
            return None  # the first request failed and let its key go: this one proceeds
        if row.request_hash != request_hash:
            raise InvalidInput(
                f"The Idempotency-Key {key!r} was used with a different request body; use a new key for a new request."
            )
        if row.response is not None:
            return row.response
        if time.monotonic() > deadline:
            raise Conflict(f"A request with Idempotency-Key {key!r} is still being handled; retry in a moment.")
        session.rollback()
        time.sleep(POLL_SECONDS)


def run_once(
    session: Session,
    settings: Settings,
    tenant_id: str,
    scope: str,
    key: str | None,
    request_hash: str,
    act: Callable[[], Any],
) -> dict[str, Any]:
    """`act()` once per (tenant, scope, key); its JSON-ready response is kept for repeats. Keys are per
    tenant: another tenant's identical key is another key."""
    if key is None:
        return dict(jsonable_encoder(act()))
    if not 1 <= len(key) <= 200:
        raise InvalidInput("An Idempotency-Key must have 1 to 200 characters.")
    _expire(session, settings)
    for _ in range(2):
        session.add(IdempotencyKey(tenant_id=tenant_id, scope=scope, key=key, request_hash=request_hash))
        try:
            session.commit()
            break
        except IntegrityError:
            session.rollback()
            stored = _replay(session, tenant_id, scope, key, request_hash)
            if stored is not None:
                return stored
    try:
        response = jsonable_encoder(act())
    except BaseException:
        session.rollback()
        session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.scope == scope, IdempotencyKey.key == key
            )
        )
        session.commit()
        raise
    row = session.get(IdempotencyKey, (tenant_id, scope, key))
    assert row is not None
    row.status_code, row.response = 201, response
    session.commit()
    return dict(response)
