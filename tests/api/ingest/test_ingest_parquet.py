"""Parquet uploads: types mapped to the four canonical ones, batches merged exactly, and every refusal."""

from __future__ import annotations

import decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingest_oracle import assert_profile, expected_profile

from api.ingest import IngestLimits, InvalidInput, parquet_format


def write(path: Path, data: pa.Table, **options: Any) -> Path:
    pq.write_table(data, path, **options)
    return path


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    return tmp_path / "upload.parquet"


def refused(ingest_file: Any, path: Path, limits: IngestLimits | None = None) -> str:
    with pytest.raises(InvalidInput) as caught:
        if limits is None:
            ingest_file(path, "upload.parquet")
        else:
            ingest_file(path, "upload.parquet", limits)
    return caught.value.detail


def test_types_become_the_four_canonical_ones(ingest_file: Any, upload: Path) -> None:
    columns = {
        "i8": pa.array([1, -2, None, 4], pa.int8()),
        "u32": pa.array([1, 2, 3, 4], pa.uint32()),
        "u64": pa.array([0, 2**63 - 1, 5, 5], pa.uint64()),
        "f32": pa.array([1.5, float("nan"), 2.25, None], pa.float32()),
        "f16": pa.array(np.array([0.5, 1.0, 1.5, 2.0], dtype=np.float16)),
        "dec": pa.array([decimal.Decimal("1.25"), None, decimal.Decimal("-3.5"), decimal.Decimal("0")]),
        "b": pa.array([True, None, False, True]),
        "s": pa.array(["a", "b", None, "a"]),
        "ls": pa.array(["x", "y", "x", None], pa.large_string()),
        "dict": pa.array(["red", "blue", "red", "red"]).dictionary_encode(),
        "nothing": pa.array([None] * 4, pa.null()),
    }
    result = ingest_file(write(upload, pa.table(columns)), "warehouse.pq")
    assert (result.format, result.kind, result.rows) == ("parquet", "table", 4)
    kinds = {
        "i8": "int64",
        "u32": "int64",
        "u64": "int64",
        "f32": "float64",
        "f16": "float64",
        "dec": "float64",
        "b": "bool",
        "s": "string",
        "ls": "string",
        "dict": "string",
        "nothing": "float64",
    }
    assert [(c.name, c.dtype) for c in result.columns] == list(kinds.items())
    canonical = pq.read_table(result.canonical)
    assert canonical.schema == pa.schema(
        [
            pa.field(name, {"int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(), "string": pa.string()}[k])
            for name, k in kinds.items()
        ]
    )
    data = canonical.to_pydict()
    assert data["dec"] == [1.25, None, -3.5, 0.0]
    assert data["dict"] == ["red", "blue", "red", "red"]
    assert data["u64"] == [0, 2**63 - 1, 5, 5]
    for column in result.columns:
        values = columns[column.name].to_pylist()
        if column.name == "dec":
            values = [None if v is None else float(v) for v in values]
        assert_profile(column, expected_profile(column.name, column.dtype, values))


def test_batches_merge_to_the_whole_columns_statistics(
    ingest_file: Any, upload: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parquet_format, "BATCH_ROWS", 100)
    rng = np.random.default_rng(5)
    n = 1234
    x = rng.normal(-5e7, 0.25, n)
    x[rng.choice(n, 20, replace=False)] = np.inf
    y = rng.integers(0, 4, n)
    label = rng.choice(["cat", "dog", "eel"], n)
    data = pa.table({"x": x, "y": y, "label": label})
    result = ingest_file(write(upload, data, row_group_size=300))
    assert result.rows == n
    assert_profile(result.columns[0], expected_profile("x", "float64", x.tolist()))
    assert_profile(result.columns[1], expected_profile("y", "int64", y.tolist()))
    assert_profile(result.columns[2], expected_profile("label", "string", label.tolist()))
    assert pq.read_table(result.canonical).equals(
        data.cast(pa.schema([("x", pa.float64()), ("y", pa.int64()), ("label", pa.string())]))
    )


def test_pandas_row_index_is_left_out(ingest_file: Any, upload: Path) -> None:
    data = pa.table({"a": [1.0, 2.0], "__index_level_0__": [7, 9], "customer": ["p", "q"]})
    result = ingest_file(write(upload, data))
    assert [c.name for c in result.columns] == ["a", "customer"]
    assert pq.read_table(result.canonical).column_names == ["a", "customer"]


@pytest.mark.parametrize(
    ("column", "shown"),
    [
        (pa.array([1, 2], pa.timestamp("us")), "timestamp[us]"),
        (pa.array([[1], [2, 3]]), "list<element: int64>"),
        (pa.array([{"a": 1}, {"a": 2}]), "struct<a: int64>"),
        (pa.array([b"x", b"y"]), "binary"),
        (pa.array([1, 2], pa.date32()), "date32[day]"),
    ],
)
def test_unsupported_types_are_named(ingest_file: Any, upload: Path, column: pa.Array, shown: str) -> None:
    write(upload, pa.table({"ok": [1, 2], "when": column}))
    assert refused(ingest_file, upload) == (
        f"Column 'when' has type {shown}, which is not supported; columns must hold numbers, booleans or text."
    )


def test_unsigned_values_beyond_int64(ingest_file: Any, upload: Path) -> None:
    write(upload, pa.table({"big": pa.array([1, 2**64 - 1], pa.uint64())}))
    assert (
        refused(ingest_file, upload) == "Column 'big' holds a value that does not fit int64 (type uint64 in the file)."
    )


def test_declared_size_over_the_limit(ingest_file: Any, upload: Path) -> None:
    # Random floats, no dictionary: the footer's uncompressed size is about the 160 kB they decode to.
    write(upload, pa.table({"x": np.random.default_rng(0).normal(size=20_000)}), use_dictionary=False)
    limits = IngestLimits(max_columns=10, max_decompressed_bytes=50_000)
    message = refused(ingest_file, upload, limits)
    assert message.startswith("The Parquet file decompresses to ")
    assert message.endswith("; the limit is 50,000 bytes (48.8 KiB).")


def test_dictionary_bomb_is_stopped_while_decoding(ingest_file: Any, upload: Path) -> None:
    # One long value repeated: a few KiB on disk and in the footer's sizes, megabytes once decoded.
    write(upload, pa.table({"s": ["x" * 1000] * 20_000}))
    assert upload.stat().st_size < 50_000
    limits = IngestLimits(max_columns=10, max_decompressed_bytes=1 << 20)
    assert refused(ingest_file, upload, limits) == (
        "The Parquet file decodes to more than 1,048,576 bytes (1.0 MiB), the limit."
    )


def test_no_rows(ingest_file: Any, upload: Path) -> None:
    write(upload, pa.table({"a": pa.array([], pa.int64())}))
    assert refused(ingest_file, upload) == "The Parquet file has no rows."


def test_too_many_columns(ingest_file: Any, upload: Path) -> None:
    write(upload, pa.table({f"c{i}": [1] for i in range(4)}))
    limits = IngestLimits(max_columns=3, max_decompressed_bytes=1 << 20)
    assert refused(ingest_file, upload, limits) == "The file has 4 columns; the limit is 3."


def test_duplicate_and_empty_names(ingest_file: Any, upload: Path) -> None:
    write(upload, pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"]))
    assert refused(ingest_file, upload) == (
        "The column name 'a' appears twice in the Parquet schema (columns 1 and 2); column names must be unique."
    )
    write(upload, pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", ""]))
    assert refused(ingest_file, upload) == (
        "Column 2 has an empty name in the Parquet schema; every column needs a name."
    )


@pytest.mark.parametrize("damage", ["footer", "pages"])
def test_corrupt_file(ingest_file: Any, upload: Path, out_dir: Path, damage: str) -> None:
    write(
        upload,
        pa.table({"x": np.arange(5000, dtype=np.float64), "s": [str(i) for i in range(5000)]}),
    )
    content = bytearray(upload.read_bytes())
    if damage == "footer":
        # Garbage where the footer's metadata is; both magic numbers stay in place.
        content[-60:-8] = b"\xff" * 52
    else:
        # Snappy-compressed pages that no longer decompress.
        content[200:20000] = b"\x07" * 19800
    upload.write_bytes(bytes(content))
    assert refused(ingest_file, upload) == "The Parquet file is corrupt or truncated and cannot be read."
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_text_that_is_not_utf8(ingest_file: Any, upload: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Parquet writers do not check that a string column holds UTF-8; the row is counted across batches.
    monkeypatch.setattr(parquet_format, "BATCH_ROWS", 4)
    raw = [b"ok"] * 6 + [b"caf\xe9"] + [b"ok"]
    write(upload, pa.table({"n": range(8), "s": pa.array(raw).view(pa.string())}))
    assert refused(ingest_file, upload) == "Column 's' holds text that is not valid UTF-8 (row 7)."
