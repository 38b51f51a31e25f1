"""What an ingest produces: the limits it enforces and the profile it returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Beyond this many distinct values a column is "high cardinality": its distinct count is reported as None
# and per-value counts are no longer kept exactly (bounded memory for id-like columns).
DISTINCT_CAP = 1000
TOP_VALUES = 20
# Above DISTINCT_CAP distinct values, whether a column is unique per row (an id) takes a pass that hashes
# the whole column; beyond this many rows (some hundreds of MB of hash table for text) it is not taken.
UNIQUE_CHECK_MAX_ROWS = 5_000_000


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
    # Every row holds a value and no two are the same (int64 and text columns; False when it could not be
    # established: above UNIQUE_CHECK_MAX_ROWS rows past DISTINCT_CAP).
    unique: bool = False
    # A text column whose every value is an ISO 8601 date or date and time.
    iso_datetime: bool = False


@dataclass(frozen=True)
class Ingested:
    format: str
    kind: str
    rows: int
    columns: list[ColumnProfile]
    canonical: Path
    # The cell texts read as missing (CSV: every column; Parquet: text columns); None for arrays.
    na_values: tuple[str, ...] | None = None
