"""Array datasets, the rules NPZ and HDF5 share: layouts accepted, the canonical NPZ read back, profiles
checked against NumPy, and every refusal (each test runs on both formats)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from ingest_oracle import assert_profile, expected_profile

from api.ingest import ColumnProfile, IngestLimits, InvalidInput, arrays

Writer = Callable[..., Path]


def write_npz(path: Path, **named: np.ndarray) -> Path:
    path = path.with_suffix(".npz")
    np.savez(path, **named)
    return path


def write_hdf5(path: Path, **named: np.ndarray) -> Path:
    path = path.with_suffix(".h5")
    with h5py.File(path, "w") as handle:
        for name, values in named.items():
            handle.create_dataset(name, data=values)
    return path


@pytest.fixture(params=["npz", "hdf5"])
def fmt(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def write(fmt: str, tmp_path: Path) -> Writer:
    """write(X=..., y=...) -> the path of an upload in the format under test."""
    writer = write_npz if fmt == "npz" else write_hdf5
    return lambda **named: writer(tmp_path / "upload", **named)


def where(fmt: str) -> str:
    return "the NPZ file" if fmt == "npz" else "the HDF5 file"


def refused(ingest_file: Any, path: Path, limits: IngestLimits | None = None) -> str:
    with pytest.raises(InvalidInput) as caught:
        if limits is None:
            ingest_file(path, path.name)
        else:
            ingest_file(path, path.name, limits)
    return caught.value.detail


def features_profile(x: np.ndarray, shape: list[int]) -> ColumnProfile:
    values = x.astype(np.float64).ravel()
    finite = values[np.isfinite(values)]
    return ColumnProfile(
        name="X",
        dtype=x.dtype.name,
        shape=shape,
        missing=0,
        non_finite=int(values.size - finite.size),
        min=float(finite.min()),
        max=float(finite.max()),
        mean=float(finite.mean()),
        std=float(finite.std()),
        distinct=None,
        top_values=None,
    )


def test_features_and_numeric_targets(ingest_file: Any, write: Writer, fmt: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, (500, 6))
    x[3, 2], x[10, 0], x[11, 5] = np.nan, np.inf, -np.inf
    y = rng.normal(size=500)
    result = ingest_file(write(X=x, y=y))
    assert (result.format, result.kind, result.rows) == (fmt, "arrays", 500)
    assert result.canonical.name == "data.npz"
    with np.load(result.canonical, allow_pickle=False) as stored:
        assert sorted(stored.files) == ["X", "y"]
        np.testing.assert_array_equal(stored["X"], x)
        np.testing.assert_array_equal(stored["y"], y)
    features, targets = result.columns
    assert_profile(features, features_profile(x, [6]))
    assert features.non_finite == 3
    expected_y = expected_profile("y", "float64", y.tolist())
    assert_profile(targets, ColumnProfile(**{**expected_y.__dict__, "shape": []}))


def test_small_chunks_give_the_same_features_profile(
    ingest_file: Any, write: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(arrays, "PROFILE_CHUNK_BYTES", 100)
    x = np.random.default_rng(2).normal(1e9, 1e-3, (300, 4))
    result = ingest_file(write(X=x, y=np.zeros(300)))
    assert_profile(result.columns[0], features_profile(x, [4]))


def test_images_gain_a_channel_axis(ingest_file: Any, write: Writer) -> None:
    x = np.arange(5 * 8 * 8, dtype=np.uint8).reshape(5, 8, 8)
    result = ingest_file(write(X=x, y=np.array([0, 1, 0, 1, 1])))
    with np.load(result.canonical) as stored:
        assert stored["X"].shape == (5, 1, 8, 8)
        np.testing.assert_array_equal(stored["X"][:, 0], x)
    features, targets = result.columns
    assert_profile(features, features_profile(x, [1, 8, 8]))
    assert (targets.dtype, targets.distinct, targets.top_values) == ("int64", 2, [(1, 3), (0, 2)])


def test_four_dimensional_images_and_column_targets(ingest_file: Any, write: Writer) -> None:
    x = np.random.default_rng(3).random((4, 3, 2, 2)).astype(np.float32)
    y = np.array([[1.5], [2.5], [1.5], [0.0]])
    result = ingest_file(write(X=x, y=y))
    with np.load(result.canonical) as stored:
        assert stored["X"].shape == (4, 3, 2, 2) and stored["X"].dtype == np.float32
        np.testing.assert_array_equal(stored["y"], [1.5, 2.5, 1.5, 0.0])
    features, targets = result.columns
    assert (features.dtype, features.shape) == ("float32", [3, 2, 2])
    assert_profile(features, features_profile(x, [3, 2, 2]))
    assert (targets.shape, targets.distinct, targets.top_values) == ([], 3, [(1.5, 2), (0.0, 1), (2.5, 1)])


def test_text_targets(ingest_file: Any, write: Writer, fmt: str) -> None:
    labels = ["setosa", "versicolor", "virginica", "setosa", "ñandú"]
    # NPZ keeps unicode; HDF5 stores fixed-length UTF-8 bytes, which are decoded.
    y = np.array(labels) if fmt == "npz" else np.array([s.encode() for s in labels])
    result = ingest_file(write(X=np.ones((5, 2)), y=y))
    with np.load(result.canonical, allow_pickle=False) as stored:
        assert stored["y"].dtype.kind == "U"
        assert stored["y"].tolist() == labels
    targets = result.columns[1]
    expected = expected_profile("y", "string", labels)
    assert_profile(targets, ColumnProfile(**{**expected.__dict__, "shape": []}))


def test_boolean_and_integer_arrays(ingest_file: Any, write: Writer) -> None:
    x = np.array([[True, False], [True, True], [False, False]])
    y = np.array([True, False, True])
    result = ingest_file(write(X=x, y=y))
    features, targets = result.columns
    assert (features.dtype, features.min, features.max, features.mean) == ("bool", 0.0, 1.0, 0.5)
    assert (targets.dtype, targets.top_values) == ("bool", [(True, 2), (False, 1)])


def test_big_endian_arrays(ingest_file: Any, write: Writer) -> None:
    x = np.arange(6, dtype=">f4").reshape(3, 2)
    y = np.array([1, 2, 2], dtype=">i4")
    result = ingest_file(write(X=x, y=y))
    features, targets = result.columns
    assert_profile(features, features_profile(x, [2]))
    assert (targets.dtype, targets.top_values) == ("int32", [(2, 2), (1, 1)])
    with np.load(result.canonical) as stored:
        np.testing.assert_array_equal(stored["X"], x)
        np.testing.assert_array_equal(stored["y"], y)


def test_json_safe_even_for_huge_values(ingest_file: Any, write: Writer) -> None:
    x = np.array([[1e308, -1e308], [1e308, 1e308]])
    result = ingest_file(write(X=x, y=np.array([1e308, 1e308])))
    features, targets = result.columns
    assert (features.min, features.max) == (-1e308, 1e308)
    assert features.std is None or math.isfinite(features.std)
    assert targets.mean is None or math.isfinite(targets.mean)


@pytest.mark.parametrize("missing", ["X", "y"])
def test_x_and_y_are_required(ingest_file: Any, write: Writer, fmt: str, missing: str) -> None:
    named = {"X": np.zeros((3, 2)), "y": np.zeros(3), "extra": np.zeros(1)}
    del named[missing]
    message = refused(ingest_file, write(**named))
    present = sorted(set(named))
    listed = f"'{present[0]}' and '{present[1]}'"
    if fmt == "npz":
        assert message == (
            f"The NPZ file has no array '{missing}'; it needs X (features) and y (targets). It holds {listed}."
        )
    else:
        assert message == (
            f"The HDF5 file has no dataset '{missing}' at its root; it needs X (features) and y (targets). "
            f"Its root holds {listed}."
        )


def test_lengths_must_match(ingest_file: Any, write: Writer, fmt: str) -> None:
    message = refused(ingest_file, write(X=np.zeros((150, 4)), y=np.zeros(149)))
    assert message == f"X in {where(fmt)} has 150 rows but y has 149; they need one target per row."


def test_no_rows(ingest_file: Any, write: Writer, fmt: str) -> None:
    message = refused(ingest_file, write(X=np.zeros((0, 4)), y=np.zeros(0)))
    assert message == f"{where(fmt)[0].upper()}{where(fmt)[1:]} has no rows: X and y are empty."


@pytest.mark.parametrize("shape", [(10,), (10, 1, 2, 3, 4)])
def test_features_need_2_to_4_dimensions(ingest_file: Any, write: Writer, fmt: str, shape: tuple[int, ...]) -> None:
    message = refused(ingest_file, write(X=np.zeros(shape), y=np.zeros(10)))
    assert message == (
        f"X in {where(fmt)} has shape {shape}; it needs 2 dimensions (rows, features), "
        "3 (rows, height, width) or 4 (rows, channels, height, width)."
    )


def test_features_must_be_numbers(ingest_file: Any, write: Writer, fmt: str) -> None:
    text = np.array([["a", "b"]] * 3) if fmt == "npz" else np.array([[b"a", b"b"]] * 3)
    message = refused(ingest_file, write(X=text, y=np.zeros(3)))
    assert message == f"X in {where(fmt)} must hold numbers; its dtype is {text.dtype}."


def test_complex_targets_are_refused(ingest_file: Any, write: Writer, fmt: str) -> None:
    message = refused(ingest_file, write(X=np.zeros((3, 2)), y=np.zeros(3, dtype=np.complex128)))
    assert message == f"y in {where(fmt)} must hold numbers or text; its dtype is complex128."


def test_targets_must_be_one_per_row(ingest_file: Any, write: Writer, fmt: str) -> None:
    message = refused(ingest_file, write(X=np.zeros((3, 2)), y=np.zeros((3, 2))))
    assert message == f"y in {where(fmt)} has shape (3, 2); it needs one target per row: shape (rows,) or (rows, 1)."


def test_features_per_row_limit(ingest_file: Any, write: Writer, fmt: str) -> None:
    limits = IngestLimits(max_columns=100, max_decompressed_bytes=1 << 20)
    message = refused(ingest_file, write(X=np.zeros((2, 3, 8, 8)), y=np.zeros(2)), limits)
    assert message == f"X in {where(fmt)} has 192 features per row (3 x 8 x 8); the limit is 100."
    message = refused(ingest_file, write(X=np.zeros((2, 101)), y=np.zeros(2)), limits)
    assert message == f"X in {where(fmt)} has 101 features per row; the limit is 100."


def test_no_features(ingest_file: Any, write: Writer, fmt: str) -> None:
    message = refused(ingest_file, write(X=np.zeros((4, 0)), y=np.zeros(4)))
    assert message == f"X in {where(fmt)} has no features: its shape is (4, 0)."


def test_undecodable_byte_labels(ingest_file: Any, write: Writer, fmt: str) -> None:
    message = refused(ingest_file, write(X=np.zeros((3, 1)), y=np.array([b"ok", b"caf\xe9", b"ok"])))
    assert message == f"y in {where(fmt)} holds bytes that are not valid UTF-8 text at index 1."


def test_a_failed_upload_leaves_nothing(ingest_file: Any, write: Writer, out_dir: Path) -> None:
    with pytest.raises(InvalidInput):
        ingest_file(write(X=np.zeros((3, 2)), y=np.zeros(2)))
    assert not out_dir.exists() or list(out_dir.iterdir()) == []
