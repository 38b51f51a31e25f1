"""Tenants and API keys: creating them, checking a request's key, and the first admin key.

A key is `rt_` followed by 43 URL-safe characters (32 random bytes). Only its SHA-256 is stored: a key
of 256 random bits cannot be guessed from its hash, so no salt or slow hash is needed, and a lookup is
one indexed equality. The first 11 characters (`prefix`) are kept in clear so that a person can tell
keys apart in listings and logs."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from core.settings import Settings
from models import DEFAULT_TENANT, ApiKey, Tenant
from models.base import new_id, utcnow

log = logging.getLogger(__name__)

KEY_PREFIX = "rt_"
KEY_BYTES = 32
VISIBLE_CHARACTERS = 11
SCOPES = ("read", "write", "admin")
# last_used_at is written at most this often per key, so that reads do not each cost a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class Caller:
    """Who is asking: the tenant every query is scoped to, and what the key may do. `admin` implies
    `read` and `write` in the key's own tenant, and adds managing tenants and keys."""

    tenant_id: str
    key_id: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def authenticate(session: Session, key: str) -> Caller:
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("This API key is not valid: it is unknown or has been revoked.")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
        session.commit()
    return Caller(tenant_id=row.tenant_id, key_id=row.id, scopes=frozenset(row.scopes))


def require_scope(caller: Caller, scope: str) -> Caller:
    if not caller.allows(scope):
        held = ", ".join(sorted(caller.scopes)) or "none"
        raise Forbidden(f"This API key's scopes ({held}) do not include {scope!r}, which this request needs.")
    return caller


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown or not scopes:
        raise InvalidInput(f"Scopes must be a non-empty list of {', '.join(SCOPES)}; got {scopes!r}.")
    return sorted(set(scopes), key=SCOPES.index)


# Tenants


def create_tenant(session: Session, name: str, limits: dict[str, int | None] | None = None) -> Tenant:
    tenant = Tenant(name=name, **(limits or {}))
    session.add(tenant)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"A tenant named {name!r} already exists; tenant names are unique.") from None
    return tenant


def list_tenants(session: Session, limit: int, offset: int) -> tuple[list[Tenant], int]:
    total = session.scalar(select(func.count()).select_from(Tenant)) or 0
    rows = session.scalars(select(Tenant).order_by(Tenant.created_at, Tenant.id).limit(limit).offset(offset))
    return list(rows), total


def find_tenant(session: Session, ref: str) -> Tenant:
    """A tenant by id or by name."""
    tenant = session.get(Tenant, ref) or session.scalar(select(Tenant).where(Tenant.name == ref))
    if tenant is None:
        raise NotFound(f"There is no tenant with id or name {ref!r}.")
    return tenant


# Keys


def create_key(session: Session, tenant_ref: str, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """The new row and the key itself, which exists nowhere else: it is shown once."""
    tenant = find_tenant(session, tenant_ref)
    key = new_key()
    row = ApiKey(
        tenant_id=tenant.id,
        name=name,
        prefix=key[:VISIBLE_CHARACTERS],
        key_hash=hash_key(key),
        scopes=check_scopes(scopes),
    )
    session.add(row)
    session.commit()
    return row, key


def list_keys(session: Session, tenant_ref: str | None, limit: int, offset: int) -> tuple[list[ApiKey], int]:
    query = select(ApiKey)
    if tenant_ref is not None:
        query = query.where(ApiKey.tenant_id == find_tenant(session, tenant_ref).id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(ApiKey.created_at, ApiKey.id).limit(limit).offset(offset))
    return list(rows), total


def revoke_key(session: Session, key_id: str) -> ApiKey:
    """Revocation takes effect on the next request: keys are checked against the database every time."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"There is no API key with id {key_id!r}.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return row


def key_read(row: ApiKey, tenant_names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "tenant": tenant_names.get(row.tenant_id, row.tenant_id),
        "tenant_id": row.tenant_id,
        "name": row.name,
        "prefix": row.prefix,
        "scopes": row.scopes,
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
        "revoked_at": row.revoked_at,
    }


def tenant_names(session: Session) -> dict[str, str]:
    return {row.id: row.name for row in session.execute(select(Tenant.id, Tenant.name))}


# The first start


@dataclass(frozen=True)
class Bootstrap:
    """What the first start did: nothing (keys existed), or made the admin key, from the setting or
    generated and written to `written_to`."""

    created: bool
    written_to: Path | None = None


def _write_secret(path: Path, key: str) -> None:
    """Create the file with mode 0600 from the start, so the key is never readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    os.replace(temporary, path)


def ensure_admin_key(session: Session, settings: Settings) -> Bootstrap:
    """When no key exists at all: the default tenant (made by the migration, or here) gets an admin key,
    REGTRAIN_ADMIN_KEY when set, else a new one written to $REGTRAIN_HOME/admin.key. Several processes
    starting at once make one key: each locks the default tenant's row before it looks for keys (SQLite's
    BEGIN IMMEDIATE serializes the whole transaction the same way)."""
    given = settings.admin_key.get_secret_value() if settings.admin_key else None
    if given is not None and len(given) < 32:
        raise InvalidInput("REGTRAIN_ADMIN_KEY must have at least 32 characters; `regtrain keys new` prints one.")
    tenant = session.scalar(select(Tenant).where(Tenant.name == DEFAULT_TENANT).with_for_update())
    if tenant is None:
        tenant = Tenant(id=new_id(), name=DEFAULT_TENANT)
        session.add(tenant)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            return ensure_admin_key(session, settings)
    if session.scalar(select(func.count()).select_from(ApiKey)):
        session.rollback()
        return Bootstrap(created=False)
    key = given or new_key()
    session.add(
        ApiKey(
            tenant_id=tenant.id,
            name="admin (first start)",
            prefix=key[:VISIBLE_CHARACTERS],
            key_hash=hash_key(key),
            scopes=list(SCOPES),
        )
    )
    if given is None:
        # Written before the commit: a key that is stored is always also in the file.
        _write_secret(settings.admin_key_path, key)
    session.commit()
    return Bootstrap(created=True, written_to=None if given is not None else settings.admin_key_path)
