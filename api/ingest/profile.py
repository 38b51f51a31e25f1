"""Column statistics accumulated batch by batch, so a profile never needs the whole column in memory."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from api.ingest.types import DISTINCT_CAP, TOP_VALUES, UNIQUE_CHECK_MAX_ROWS, ColumnProfile

# Column kinds of a table (and of y): the four dtypes a canonical table may hold.
TABLE_KINDS = ("float64", "int64", "bool", "string")
# ISO 8601 dates (2024-01-31) and dates with a time (2024-01-31T08:00, 2024-01-31 08:00:00.5+01:00, ...Z),
# as pandas, databases and spreadsheets export them.
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?( ?(Z|[+-]\d{2}(:?\d{2})?))?)?$").pattern


class Moments:
    """Count, min, max, mean and the sum of squared deviations (M2) of finite float64 values.

    Batches are merged with Chan et al.'s pairwise update, on values shifted by the first one seen: the
    batch means being merged are then small, so a column such as 5e7 +- 0.25 keeps its spread to ~1e-15
    instead of losing it to the rounding of means near 5e7.
    """

    def __init__(self) -> None:
        self.count = 0
        self.shift: float | None = None
        self.shifted_mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, values: np.ndarray) -> None:
        n = int(values.size)
        if n == 0:
            return
        # Values near the float64 limit overflow here; the summary then reports None rather than inf.
        with np.errstate(over="ignore", invalid="ignore"):
            if self.shift is None:
                self.shift = float(values[0])
            shifted = values - self.shift
            batch_mean = float(shifted.mean())
            batch_m2 = float(np.square(shifted - batch_mean).sum())
            self.min = min(self.min, float(values.min()))
            self.max = max(self.max, float(values.max()))
            if self.count == 0:
                self.count, self.shifted_mean, self.m2 = n, batch_mean, batch_m2
                return
            total = self.count + n
            delta = batch_mean - self.shifted_mean
            self.shifted_mean += delta * n / total
            self.m2 += batch_m2 + delta * delta * (self.count * n / total)
            self.count = total

    def summary(self) -> tuple[float | None, float | None, float | None, float | None]:
        """(min, max, mean, population std), each None when there are no values or it is not finite."""
        if self.count == 0 or self.shift is None:
            return None, None, None, None
        mean = self.shift + self.shifted_mean
        std = math.sqrt(self.m2 / self.count) if math.isfinite(self.m2) and self.m2 >= 0 else math.nan
        return _finite(self.min), _finite(self.max), _finite(mean), _finite(std)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class ValueCounts:
    """Per-value counts, exact while a column has at most `capacity` distinct values.

    Past that it becomes a Misra-Gries summary (merged per batch, as in Agarwal et al.'s mergeable
    summaries): memory stays bounded, and every value occurring more than rows / (capacity + 1) times is
    still among `candidates()`, whose exact counts a second, cheap pass can then establish.
    """

    def __init__(self, capacity: int = DISTINCT_CAP) -> None:
        self.capacity = capacity
        self.exact = True
        self._values: pa.Array | None = None
        self._counts: pa.Array | None = None
        # The first values of the column, so that a column of all-unique values still shows some.
        self._first_seen: pa.Array | None = None

    def add(self, values: pa.Array) -> None:
        if len(values) == 0:
            return
        batch = pc.value_counts(values)
        values, counts = batch.field("values"), batch.field("counts")
        if self._first_seen is None:
            # A copy, so that the first batch's counts are not kept alive through a slice of them.
            self._first_seen = values.take(pa.array(range(min(TOP_VALUES, len(values))), type=pa.int64()))
        if self._values is not None and self._counts is not None:
            merged = (
                pa.table(
                    {
                        "value": pa.concat_arrays([self._values, values]),
                        "count": pa.concat_arrays([self._counts, counts]),
                    }
                )
                .group_by("value")
                .aggregate([("count", "sum")])
            )
            values = merged.column("value").combine_chunks()
            counts = merged.column("count_sum").combine_chunks()
        if len(values) > self.capacity:
            self.exact = False
            as_numpy = counts.to_numpy()
            threshold = int(np.partition(as_numpy, -(self.capacity + 1))[-(self.capacity + 1)])
            keep = pc.greater(counts, threshold)
            values = values.filter(keep)
            counts = pc.subtract(counts.filter(keep), threshold)
        self._values, self._counts = values, counts

    @property
    def distinct(self) -> int | None:
        if not self.exact:
            return None
        return 0 if self._values is None else len(self._values)

    def top(self, n: int = TOP_VALUES) -> list[tuple[Any, int]]:
        """The n most frequent values, most frequent first, ties by value; exact only while `exact`."""
        if self._values is None or self._counts is None:
            return []
        return _top(self._values, self._counts, n)

    def candidates(self) -> pa.Array:
        """Values that may be among the most frequent: the summary's survivors and the first values seen."""
        parts = [part for part in (self._values, self._first_seen) if part is not None]
        if not parts:
            return pa.array([], type=pa.string())
        return pc.unique(pa.concat_arrays(parts))


def _top(values: pa.Array, counts: pa.Array, n: int) -> list[tuple[Any, int]]:
    table = pa.table({"value": values, "count": counts})
    order = pc.sort_indices(table, sort_keys=[("count", "descending"), ("value", "ascending")])
    head = table.take(order.slice(0, n))
    return [
        (value, int(count)) for value, count in zip(head["value"].to_pylist(), head["count"].to_pylist(), strict=True)
    ]


class ColumnAccumulator:
    """Profile of one column of kind float64, int64, bool or string, fed one Arrow array at a time."""

    def __init__(self, name: str, kind: str) -> None:
        if kind not in TABLE_KINDS:
            raise ValueError(f"unknown column kind {kind!r}")
        self.name = name
        self.kind = kind
        self.missing = 0
        self.non_finite = 0
        self._moments = None if kind == "string" else Moments()
        self._counts: ValueCounts | None = ValueCounts(DISTINCT_CAP)
        self._recounted_top: list[tuple[Any, int]] | None = None
        self.rows = 0
        self._iso_datetime = kind == "string"
        self._unique: bool | None = None

    def add(self, column: pa.Array) -> None:
        self.rows += len(column)
        self.missing += column.null_count
        present = column.drop_null() if column.null_count else column
        if self.kind == "string":
            assert self._counts is not None
            self._counts.add(present)
            if self._iso_datetime and len(present):
                self._iso_datetime = bool(pc.all(pc.match_substring_regex(present, ISO_DATETIME)).as_py())
            return
        assert self._moments is not None
        numbers = present.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        counted: pa.Array = present
        if self.kind == "float64":
            finite = np.isfinite(numbers)
            n_finite = int(np.count_nonzero(finite))
            if n_finite < len(numbers):
                self.non_finite += len(numbers) - n_finite
                numbers = numbers[finite]
            if self._counts is not None:
                # -0.0 and 0.0 are one value, as for NumPy's unique; adding 0.0 turns the former into the latter.
                counted = pa.array(numbers + 0.0)
        self._moments.add(numbers)
        if self._counts is not None:
            self._counts.add(counted)
            if not self._counts.exact and self.kind != "string":
                # A numeric column past the cap reports neither distinct nor top values: stop counting.
                self._counts = None

    @property
    def needs_recount(self) -> bool:
        """True when top values are owed but the counts are a summary: call `recount` with the column again."""
        return self._counts is not None and not self._counts.exact and self._recounted_top is None

    @property
    def needs_uniqueness_check(self) -> bool:
        """True when whether every row differs is owed and unknown from the counts: call `check_unique`."""
        counted = self._counts is not None and self._counts.exact
        return (
            self.kind in ("int64", "string")
            and self._unique is None
            and not counted
            and self.missing == 0
            and self.rows <= UNIQUE_CHECK_MAX_ROWS
        )

    def check_unique(self, column: pa.ChunkedArray) -> None:
        """Whether the whole column (every row, no nulls) holds each value once."""
        self._unique = int(pc.count_distinct(column).as_py()) == self.rows

    def _is_unique(self) -> bool:
        if self._unique is not None:
            return self._unique
        if self.kind not in ("int64", "string") or self.missing or self.rows == 0:
            return False
        return self._counts is not None and self._counts.exact and self._counts.distinct == self.rows

    def recount(self, columns: Iterable[pa.Array]) -> None:
        """Exact counts of the summary's candidates, from a second pass over the same column's batches."""
        assert self._counts is not None
        candidates = self._counts.candidates()
        totals: dict[Any, int] = {}
        for column in columns:
            present = column.drop_null() if column.null_count else column
            hits = present.filter(pc.is_in(present, value_set=candidates))
            if len(hits) == 0:
                continue
            batch = pc.value_counts(hits)
            for value, count in zip(batch.field("values").to_pylist(), batch.field("counts").to_pylist(), strict=True):
                totals[value] = totals.get(value, 0) + count
        values = pa.array(list(totals), type=candidates.type)
        counts = pa.array(list(totals.values()), type=pa.int64())
        self._recounted_top = _top(values, counts, TOP_VALUES)

    def profile(self, *, dtype: str | None = None, shape: list[int] | None = None) -> ColumnProfile:
        if self.needs_recount:
            raise RuntimeError(f"column {self.name!r} needs its exact counts (recount) before its profile")
        distinct = self._counts.distinct if self._counts is not None else None
        top: list[tuple[Any, int]] | None = None
        if self.kind in ("string", "bool") or (distinct is not None and distinct <= TOP_VALUES):
            if self._recounted_top is not None:
                top = self._recounted_top
            elif self._counts is not None:
                top = self._counts.top()
        low, high, mean, std = self._moments.summary() if self._moments is not None else (None, None, None, None)
        return ColumnProfile(
            name=self.name,
            dtype=dtype or self.kind,
            shape=shape,
            missing=self.missing,
            non_finite=self.non_finite,
            min=low,
            max=high,
            mean=mean,
            std=std,
            distinct=distinct,
            top_values=top,
            unique=self._is_unique(),
            iso_datetime=self._iso_datetime and self.rows > self.missing,
        )


def profile_features(name: str, features: np.ndarray, chunk_bytes: int) -> ColumnProfile:
    """Profile of an (N, ...) numeric array as one column: per-row shape and statistics over all cells."""
    moments = Moments()
    non_finite = 0
    row_bytes = max(1, int(np.prod(features.shape[1:], dtype=np.int64)) * features.dtype.itemsize)
    rows_per_chunk = max(1, chunk_bytes // row_bytes)
    floating = features.dtype.kind == "f"
    for start in range(0, len(features), rows_per_chunk):
        values = features[start : start + rows_per_chunk].reshape(-1).astype(np.float64, copy=False)
        if floating:
            finite = np.isfinite(values)
            n_finite = int(np.count_nonzero(finite))
            if n_finite < values.size:
                non_finite += values.size - n_finite
                values = values[finite]
        moments.add(values)
    low, high, mean, std = moments.summary()
    return ColumnProfile(
        name=name,
        dtype=features.dtype.name,
        shape=[int(d) for d in features.shape[1:]],
        missing=0,
        non_finite=non_finite,
        min=low,
        max=high,
        mean=mean,
        std=std,
        distinct=None,
        top_values=None,
    )
