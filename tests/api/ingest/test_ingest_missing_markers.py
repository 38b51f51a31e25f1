"""Missing-value markers: what pandas and R write for "no value" is missing by default, in CSV and in
Parquet text columns; an upload's own list replaces the default; a numeric column with markers stays
numeric, and the profile counts every marker as missing."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingest_oracle import LIMITS

from api.ingest import DEFAULT_NA_VALUES, ingest


def ingest_csv(tmp_path: Path, content: bytes, na_values: tuple[str, ...] = DEFAULT_NA_VALUES) -> Any:
    upload = tmp_path / "upload.csv"
    upload.write_bytes(content)
    return ingest(upload, "upload.csv", tmp_path / "out", LIMITS, na_values)


def read_back(path: Path) -> dict[str, list[Any]]:
    return pq.read_table(path).to_pydict()


@pytest.mark.parametrize("marker", ["NA", "N/A", "NaN", "null", "NULL", "None", "?", "", " ", "\t", "  NA "])
def test_each_marker_is_missing_and_the_column_stays_numeric(tmp_path: Path, marker: str) -> None:
    result = ingest_csv(tmp_path, f"a,b\n1.5,x\n{marker},y\n3,z\n".encode())
    a = result.columns[0]
    assert (a.dtype, a.missing, a.non_finite, a.min, a.max) == ("float64", 1, 0, 1.5, 3.0)
    assert read_back(result.canonical)["a"] == [1.5, None, 3.0]
    assert result.na_values == DEFAULT_NA_VALUES


def test_integer_and_boolean_columns_with_markers_keep_their_types(tmp_path: Path) -> None:
    result = ingest_csv(tmp_path, b"n,flag,text\n1,true,NA\nNA,?,b\n3, false ,null\n")
    assert [column.dtype for column in result.columns] == ["int64", "bool", "string"]
    assert [column.missing for column in result.columns] == [1, 1, 2]
    assert read_back(result.canonical) == {"n": [1, None, 3], "flag": [True, None, False], "text": [None, "b", None]}


def test_na_every_tenth_row_of_a_hundred_is_ten_missing_numbers_not_categories(tmp_path: Path) -> None:
    lines = ["a,b"] + [f"{'NA' if i % 10 == 0 else i * 0.5},{i % 3}" for i in range(100)]
    result = ingest_csv(tmp_path, ("\n".join(lines) + "\n").encode())
    a = result.columns[0]
    assert (a.dtype, a.missing, a.non_finite, a.distinct) == ("float64", 10, 0, 90)
    assert a.min == 0.5 and a.max == 49.5


def test_markers_in_later_blocks_keep_a_column_numeric(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.ingest import csv_format

    monkeypatch.setattr(csv_format, "BLOCK_SIZE", 256)
    lines = ["a,b"] + [f"{'N/A' if i == 150 else i},{'?' if i == 170 else 'k'}" for i in range(200)]
    result = ingest_csv(tmp_path, ("\n".join(lines) + "\n").encode())
    assert [(c.dtype, c.missing) for c in result.columns] == [("int64", 1), ("string", 1)]


def test_nan_text_is_missing_while_lowercase_nan_and_infinities_are_non_finite(tmp_path: Path) -> None:
    result = ingest_csv(tmp_path, b"v\n1\nNaN\nnan\ninf\n-inf\n2\n")
    v = result.columns[0]
    assert (v.dtype, v.missing, v.non_finite) == ("float64", 1, 3)


def test_an_uploads_own_list_replaces_the_default(tmp_path: Path) -> None:
    # "NA" is North America here: text, while "?" and empty cells are missing.
    content = b"region,n\nNA,1\nEU,?\n,3\nnull,4\n"
    result = ingest_csv(tmp_path, content, ("", "?"))
    region, n = result.columns
    assert (region.dtype, region.missing, n.dtype, n.missing) == ("string", 1, "int64", 1)
    assert read_back(result.canonical) == {"region": ["NA", "EU", None, "null"], "n": [1, None, 3, 4]}
    assert result.na_values == ("", "?")


def test_an_empty_list_reads_nothing_as_missing(tmp_path: Path) -> None:
    result = ingest_csv(tmp_path, b"a,b\n1,x\n,y\n", ())
    # An empty cell is then text, so the column is text.
    assert (result.columns[0].dtype, result.columns[0].missing) == ("string", 0)


def test_parquet_text_columns_read_markers_and_numbers_keep_their_nulls(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    table = pa.table({"city": ["Oslo", "NA", " ", None, "?"], "x": [1.0, None, float("nan"), 4.0, 5.0]})
    pq.write_table(table, buffer)
    upload = tmp_path / "upload.parquet"
    upload.write_bytes(buffer.getvalue())
    result = ingest(upload, "upload.parquet", tmp_path / "out", LIMITS)
    city, x = result.columns
    assert (city.missing, x.missing, x.non_finite) == (4, 1, 1)
    assert read_back(result.canonical)["city"] == ["Oslo", None, None, None, None]
    kept = ingest(upload, "upload.parquet", tmp_path / "out2", LIMITS, ("?",))
    assert kept.columns[0].missing == 2
    assert read_back(kept.canonical)["city"] == ["Oslo", "NA", " ", None, None]
