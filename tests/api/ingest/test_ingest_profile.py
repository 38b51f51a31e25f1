"""The profile's building blocks: exact batch merges of moments, bounded value counts, JSON-safe results."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from api.ingest.profile import ColumnAccumulator, Moments, ValueCounts


@pytest.mark.parametrize("seed", range(5))
def test_merged_moments_equal_numpy_on_the_whole(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(rng.uniform(-1e8, 1e8), rng.uniform(1e-3, 1e3), 2000)
    cuts = np.sort(rng.choice(np.arange(1, 2000), 12, replace=False))
    moments = Moments()
    for part in np.split(values, cuts):
        moments.add(part)
    moments.add(np.array([]))
    low, high, mean, std = moments.summary()
    assert (low, high) == (values.min(), values.max())
    assert mean == pytest.approx(values.mean(), rel=1e-14)
    assert std == pytest.approx(values.std(), rel=1e-10)


def test_no_values_no_numbers() -> None:
    assert Moments().summary() == (None, None, None, None)


def test_overflowing_moments_become_none() -> None:
    moments = Moments()
    with np.errstate(all="raise"):
        moments.add(np.array([1.7e308, -1.7e308, 1.7e308]))
    low, high, mean, std = moments.summary()
    assert (low, high) == (-1.7e308, 1.7e308)
    assert std is None
    assert mean is None or math.isfinite(mean)


def test_counts_are_exact_up_to_the_capacity() -> None:
    counts = ValueCounts(capacity=5)
    for batch in (["a", "b", "a"], ["c", "a"], ["d", "e", "b"]):
        counts.add(pa.array(batch))
    assert counts.exact and counts.distinct == 5
    assert counts.top(3) == [("a", 3), ("b", 2), ("c", 1)]
    counts.add(pa.array(["f"]))
    assert not counts.exact and counts.distinct is None


@pytest.mark.parametrize("seed", range(3))
def test_frequent_values_survive_the_summary(seed: int) -> None:
    """Misra-Gries: every value occurring more than n / (capacity + 1) times stays a candidate."""
    rng = np.random.default_rng(seed)
    capacity = 20
    stream = [f"r{v}" for v in rng.integers(0, 5000, 3000)] + [f"hot{i % 4}" for i in range(1200)]
    rng.shuffle(stream)
    counts = ValueCounts(capacity=capacity)
    for start in range(0, len(stream), 97):
        counts.add(pa.array(stream[start : start + 97]))
    truth = Counter(stream)
    heavy = {value for value, count in truth.items() if count > len(stream) / (capacity + 1)}
    assert heavy == {"hot0", "hot1", "hot2", "hot3"}
    assert heavy <= set(counts.candidates().to_pylist())


def test_a_string_column_past_the_capacity_gets_exact_top_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("api.ingest.profile.DISTINCT_CAP", 10)
    accumulator = ColumnAccumulator("word", "string")
    batches = [pa.array(["x", "y", "x", None] + [f"u{i}_{b}" for i in range(8)]) for b in range(4)]
    for batch in batches:
        accumulator.add(batch)
    assert accumulator.needs_recount
    with pytest.raises(RuntimeError):
        accumulator.profile()
    accumulator.recount(batches)
    profile = accumulator.profile()
    assert profile.distinct is None and profile.missing == 4
    assert profile.top_values is not None
    assert profile.top_values[:2] == [("x", 8), ("y", 4)]
    assert all(count == 1 for _, count in profile.top_values[2:])


def test_a_numeric_column_past_the_capacity_stops_counting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("api.ingest.profile.DISTINCT_CAP", 10)
    accumulator = ColumnAccumulator("x", "float64")
    accumulator.add(pa.array(np.arange(11, dtype=np.float64)))
    accumulator.add(pa.array([1.0, None]))
    assert not accumulator.needs_recount
    profile = accumulator.profile()
    assert (profile.distinct, profile.top_values, profile.missing, profile.max) == (None, None, 1, 10.0)


def test_negative_zero_is_zero() -> None:
    accumulator = ColumnAccumulator("x", "float64")
    accumulator.add(pa.array([0.0, -0.0, 1.0]))
    accumulator.add(pa.array([-0.0]))
    profile = accumulator.profile()
    assert profile.distinct == 2
    assert profile.top_values == [(0.0, 3), (1.0, 1)]


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown column kind"):
        ColumnAccumulator("x", "date")
