"""Typed dependencies for routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header
from sqlalchemy.orm import Session

from core.db import get_session_factory
from core.settings import Settings, get_settings


def get_session() -> Iterator[Session]:
    session = get_session_factory()()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]
IdempotencyKeyDep = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Makes the request safe to retry: a repeat with the same key and body returns the first "
        "response instead of creating again; the same key with another body is refused (422). Kept 24 hours.",
    ),
]
SettingsDep = Annotated[Settings, Depends(get_settings)]
