"""What an ingest produces: the limits it enforces and the profile it returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Beyond this many distinct values a column is "high cardinality": its distinct count is reported as None
# and per-value counts are no longer kept exactly (bounded memory for id-like columns).
DISTINCT_CAP = 1000
TOP_VALUES = 20


@dataclass(frozen=True)
class IngestLimits:
    max_columns: int
    max_decompressed_bytes: int


@dataclass(frozen=True)
class ColumnProfile:
    """One column of a table, or X / y of an array dataset. Every number is finite or None (JSON-safe).

    For numeric columns, `distinct` and `top_values` count finite values only: NaN and infinities are
    counted in `non_finite` and would not survive JSON. Booleans count as 0/1 for min/max/mean/std.
    """

    name: str
    dtype: str
    shape: list[int] | None
    missing: int
    non_finite: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    distinct: int | None
    top_values: list[tuple[Any, int]] | None


@dataclass(frozen=True)
class Ingested:
    format: str
    kind: str
    rows: int
    columns: list[ColumnProfile]
    canonical: Path
