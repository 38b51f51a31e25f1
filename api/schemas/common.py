from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """Request bodies: unknown fields are an error (a typo must not be silently ignored), and NaN or
    infinity are refused (no NaN ever reaches a stored spec or a JSON response)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ErrorRead(BaseModel):
    detail: str = Field(description="What went wrong, as a sentence a person can act on.")
    error: str = Field(description="Machine-readable error code, e.g. NotFound, Conflict, InvalidInput.")
