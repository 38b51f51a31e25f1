from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """Request bodies: unknown fields are an error (a typo must not be silently ignored), and NaN or
    infinity are refused (no NaN ever reaches a stored spec or a JSON response)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ErrorRead(BaseModel):
    detail: str = Field(description="What went wrong, as a sentence a person can act on.")
    error: str = Field(description="Machine-readable error code, e.g. NotFound, Conflict, InvalidInput.")


# Paging parameters shared by every listing; the offset is bounded so that it fits a database integer.
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="Items to skip.")]
