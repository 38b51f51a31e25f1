"""Tenants and API keys: for keys with the `admin` scope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from api.deps import Admin, SessionDep
from api.schemas.common import ErrorRead, Limit, Offset
from api.schemas.tenant import KeyCreate, KeyCreated, KeyPage, KeyRead, TenantCreate, TenantPage, TenantRead
from api.services import keys

router = APIRouter(prefix="/v1", tags=["admin"])


@router.post(
    "/tenants",
    status_code=status.HTTP_201_CREATED,
    response_model=TenantRead,
    responses={409: {"model": ErrorRead, "description": "A tenant with this name exists."}},
)
def create_tenant(body: TenantCreate, _caller: Admin, session: SessionDep) -> Any:
    """Create a tenant: an owner of datasets, jobs and schedules that no other tenant can see."""
    return keys.create_tenant(session, body.name, body.model_dump(exclude={"name"}))


@router.get("/tenants", response_model=TenantPage)
def list_tenants(_caller: Admin, session: SessionDep, limit: Limit = 50, offset: Offset = 0) -> Any:
    """List tenants, oldest first, with their limits."""
    rows, total = keys.list_tenants(session, limit, offset)
    return {"items": rows, "total": total, "limit": limit, "offset": offset}


@router.post(
    "/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    responses={404: {"model": ErrorRead, "description": "No tenant with this id or name."}},
)
def create_key(body: KeyCreate, _caller: Admin, session: SessionDep) -> KeyCreated:
    """Create an API key for a tenant. The response holds the key, once; only its hash is stored."""
    row, key = keys.create_key(session, body.tenant, body.name, list(body.scopes))
    return KeyCreated.model_validate({**keys.key_read(row, keys.tenant_names(session)), "key": key})


@router.get(
    "/keys",
    response_model=KeyPage,
    responses={404: {"model": ErrorRead, "description": "No tenant with this id or name."}},
)
def list_keys(
    _caller: Admin,
    session: SessionDep,
    tenant: Annotated[str | None, Query(max_length=100, description="Only this tenant's keys (id or name).")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> KeyPage:
    """List API keys (prefix, scopes, last use, revocation), never the keys themselves."""
    rows, total = keys.list_keys(session, tenant, limit, offset)
    names = keys.tenant_names(session)
    items = [KeyRead.model_validate(keys.key_read(row, names)) for row in rows]
    return KeyPage(items=items, total=total, limit=limit, offset=offset)


@router.delete(
    "/keys/{key_id}",
    response_model=KeyRead,
    responses={404: {"model": ErrorRead, "description": "No API key with this id."}},
)
def revoke_key(key_id: str, _caller: Admin, session: SessionDep) -> KeyRead:
    """Revoke an API key: requests with it fail from now on. Revoking twice is harmless."""
    return KeyRead.model_validate(keys.key_read(keys.revoke_key(session, key_id), keys.tenant_names(session)))
