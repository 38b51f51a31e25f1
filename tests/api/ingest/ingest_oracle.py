"""Independent expectations for ingest tests: profiles computed with NumPy and Counter, the shared limits."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from api.ingest import DISTINCT_CAP, TOP_VALUES, ColumnProfile, IngestLimits

LIMITS = IngestLimits(max_columns=100, max_decompressed_bytes=8 << 20)


def expected_profile(name: str, dtype: str, values: list[Any]) -> ColumnProfile:
    """What a table column's profile must say, computed independently with NumPy and Counter."""
    present = [v for v in values if v is not None]
    low = high = mean = std = None
    non_finite = 0
    counted: list[Any] = present
    if dtype != "string":
        numbers = np.array(present, dtype=np.float64)
        finite = numbers[np.isfinite(numbers)]
        non_finite = int(numbers.size - finite.size)
        if finite.size:
            low, high = float(finite.min()), float(finite.max())
            mean, std = float(finite.mean()), float(finite.std())
        if dtype == "float64":
            counted = [float(v) + 0.0 for v in present if math.isfinite(v)]
    counts = Counter(counted)
    distinct = len(counts) if len(counts) <= DISTINCT_CAP else None
    top = None
    if dtype in ("string", "bool") or (distinct is not None and distinct <= TOP_VALUES):
        top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_VALUES]
    return ColumnProfile(
        name=name,
        dtype=dtype,
        shape=None,
        missing=len(values) - len(present),
        non_finite=non_finite,
        min=low,
        max=high,
        mean=mean,
        std=std,
        distinct=distinct,
        top_values=top,
    )


def assert_profile(actual: ColumnProfile, expected: ColumnProfile) -> None:
    """Equal field by field; mean and std to 1e-12 relative (batch merges sum in a different order)."""
    for field in ("name", "dtype", "shape", "missing", "non_finite", "min", "max", "distinct"):
        assert getattr(actual, field) == getattr(expected, field), field
    for field in ("mean", "std"):
        want = getattr(expected, field)
        got = getattr(actual, field)
        assert (got is None) == (want is None), field
        if want is not None:
            assert got == pytest.approx(want, rel=1e-12, abs=1e-12), field
    if expected.top_values is None:
        assert actual.top_values is None
    else:
        assert actual.top_values is not None
        assert [tuple(pair) for pair in actual.top_values] == [tuple(pair) for pair in expected.top_values]
    # Whatever the data, the profile must survive strict JSON.
    json.dumps(dataclasses.asdict(actual), allow_nan=False)
