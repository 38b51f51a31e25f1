"""Tenants and API keys (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import Page, StrictModel

TENANT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
Scope = Literal["read", "write", "admin"]


class TenantCreate(StrictModel):
    name: Annotated[
        str,
        Field(pattern=TENANT_NAME_PATTERN, description="Unique: letters, digits, '.', '_' and '-', 1 to 100."),
    ]
    max_queued_jobs: Annotated[
        int | None, Field(ge=1, le=1_000_000, description="Default: REGTRAIN_TENANT_MAX_QUEUED_JOBS.")
    ] = None
    max_running_jobs: Annotated[
        int | None, Field(ge=1, le=100_000, description="Default: REGTRAIN_TENANT_MAX_RUNNING_JOBS.")
    ] = None
    max_stored_bytes: Annotated[
        int | None, Field(ge=1, le=2**62, description="Default: REGTRAIN_TENANT_MAX_STORED_BYTES.")
    ] = None

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "team-forecasting"}]})


class TenantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    max_queued_jobs: int | None = Field(description="Null: the server's default applies.")
    max_running_jobs: int | None = Field(description="Null: the server's default applies.")
    max_stored_bytes: int | None = Field(description="Null: the server's default applies.")
    created_at: datetime


class KeyCreate(StrictModel):
    tenant: Annotated[str, Field(min_length=1, max_length=100, description="The tenant's id or name.")]
    name: Annotated[str, Field(min_length=1, max_length=100, description="What the key is for, for people.")]
    scopes: Annotated[
        list[Scope],
        Field(
            min_length=1,
            max_length=3,
            description="read: GET routes; write: create, change, cancel and delete; admin: both, plus tenants "
            "and keys.",
        ),
    ] = ["read", "write"]

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"tenant": "default", "name": "nightly pipeline", "scopes": ["read", "write"]}]}
    )


class KeyRead(BaseModel):
    id: str
    tenant: str = Field(description="The tenant's name.")
    tenant_id: str
    name: str
    prefix: str = Field(
        description="The key's first characters, to tell keys apart; the key itself is never shown again."
    )
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None = Field(description="Within a minute.")
    revoked_at: datetime | None


class KeyCreated(KeyRead):
    key: str = Field(description="The API key. It is shown only in this response: store it now.")


class TenantPage(Page[TenantRead]):
    pass


class KeyPage(Page[KeyRead]):
    pass
