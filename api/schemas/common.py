from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationInfo

T = TypeVar("T")


class StrictModel(BaseModel):
    """Request bodies: unknown fields are an error (a typo must not be silently ignored), NaN or
    infinity are refused (no NaN ever reaches a stored spec or a JSON response), and values are not
    coerced: `"0.01"` is not a number, `false` is not an integer, `10.0` is not an integer and `0` is
    not a boolean. A JSON integer is a valid number (`"lr": 1` means 1.0)."""

    # FastAPI validates a parsed body in pydantic's Python mode, where strict mode refuses a list for a
    # tuple and a string for an enum: tuples are declared with `FloatPair` below, choices as Literals.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


# A JSON array of two numbers. The array may arrive as a Python list (FastAPI validates parsed JSON),
# so the tuple itself is lax; each number stays strict.
FloatPair = Annotated[tuple[Annotated[float, Strict()], Annotated[float, Strict()]], Field(strict=False)]


def refuse_null(value: Any, info: ValidationInfo) -> Any:
    """For partial updates, where a field left out keeps its current value: an explicit null for a
    field that cannot be null is refused with a sentence, not stored (nor silently ignored)."""
    if value is None:
        raise ValueError(f"{info.field_name} cannot be null; leave the field out to keep its current value")
    return value


def drop_null_from_schema(schema: dict[str, Any]) -> None:
    """JSON schema of a partial update: every field may be left out, none may be null."""
    for node in schema.get("properties", {}).values():
        options = node.get("anyOf")
        if options and {"type": "null"} in options:
            rest = [option for option in options if option != {"type": "null"}]
            del node["anyOf"]
            if len(rest) == 1:
                node.update(rest[0])
            else:
                node["anyOf"] = rest
        if node.get("default", "absent") is None:
            del node["default"]


class ErrorRead(BaseModel):
    detail: str = Field(description="What went wrong, as a sentence a person can act on.")
    error: str = Field(
        description="Machine-readable error code, e.g. NotFound, Conflict, InvalidInput, MalformedJSON, "
        "UnsupportedMediaType, Unauthorized, Forbidden, TooManyRequests, Unavailable."
    )


class Page(BaseModel, Generic[T]):
    """One page of a listing. Each listing names its page type (`class JobPage(Page[JobRead])`) so that
    the OpenAPI schema reads `JobPage`, not `Page_JobRead_`."""

    items: list[T]
    total: int = Field(description="Items matching the request, over all pages.")
    limit: int = Field(description="Page size asked for.")
    offset: int = Field(description="Items skipped before this page.")


# Paging parameters shared by every listing; the offset is bounded so that it fits a database integer.
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="Items to skip.")]
