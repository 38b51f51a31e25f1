"""CSV uploads: delimiters, quoting, types (including types that change after the first block), profiles
checked against NumPy, and the canonical Parquet read back."""

from __future__ import annotations

import csv
import io
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingest_oracle import assert_profile, expected_profile

from api.ingest import DISTINCT_CAP, TOP_VALUES, csv_format, table
from api.ingest.csv_format import CsvSource, detect_delimiter


def read_back(path: Path) -> dict[str, list[Any]]:
    return pq.read_table(path).to_pydict()


def same_values(actual: list[Any], expected: list[Any]) -> bool:
    """Equality that also holds NaN equal to NaN."""
    return len(actual) == len(expected) and all(
        a == e or (isinstance(a, float) and isinstance(e, float) and math.isnan(a) and math.isnan(e))
        for a, e in zip(actual, expected, strict=True)
    )


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Arrow blocks of 256 bytes, so a few hundred bytes of CSV span several blocks (and type inference
    sees only the first)."""
    monkeypatch.setattr(csv_format, "BLOCK_SIZE", 256)
    monkeypatch.setattr(table, "ROW_GROUP_BYTES", 512)
    return 256


def test_quotes_embedded_delimiters_and_newlines(ingest_bytes: Any) -> None:
    content = (
        b"id,text,flag,score\n"
        b'1,"plain",true,0.5\n'
        b'2,"with, comma",false,1.5\n'
        b'3,"two\nlines",true,\n'
        b'4,"say ""hi""",,2.5\n'
        b"5,,false,-1\n"
    )
    result = ingest_bytes(content, "people.csv")
    assert (result.format, result.kind, result.rows) == ("csv", "table", 5)
    assert result.canonical.name == "data.parquet"
    assert read_back(result.canonical) == {
        "id": [1, 2, 3, 4, 5],
        "text": ["plain", "with, comma", "two\nlines", 'say "hi"', None],
        "flag": [True, False, True, None, False],
        "score": [0.5, 1.5, None, 2.5, -1.0],
    }
    expected = {
        "id": expected_profile("id", "int64", [1, 2, 3, 4, 5]),
        "text": expected_profile("text", "string", ["plain", "with, comma", "two\nlines", 'say "hi"', None]),
        "flag": expected_profile("flag", "bool", [True, False, True, None, False]),
        "score": expected_profile("score", "float64", [0.5, 1.5, None, 2.5, -1.0]),
    }
    assert [c.name for c in result.columns] == list(expected)
    for column in result.columns:
        assert_profile(column, expected[column.name])
    flag = result.columns[2]
    assert (flag.min, flag.max, flag.mean) == (0.0, 1.0, 2 / 4)


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiters_are_detected(ingest_bytes: Any, delimiter: str) -> None:
    # The text column holds the other candidates, quoted, so only the header decides.
    others = "".join(d for d in ",;\t|" if d != delimiter)
    rows = [["x", "label", "note"], ["1.5", "a", f"one{others}two"], ["2.5", "b", "three"], ["-3", "a", ""]]
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n", quoting=csv.QUOTE_MINIMAL).writerows(rows)
    result = ingest_bytes(buffer.getvalue().encode())
    assert read_back(result.canonical) == {
        "x": [1.5, 2.5, -3.0],
        "label": ["a", "b", "a"],
        "note": [f"one{others}two", "three", None],
    }


def test_semicolon_file_with_decimal_commas_keeps_its_columns(tmp_path: Path) -> None:
    upload = tmp_path / "eu.csv"
    upload.write_text("price;qty\n1,5;2\n2,25;3\n", encoding="utf-8")
    assert detect_delimiter(upload) == (";", 2, True)


def test_single_column_file_falls_back_to_comma(ingest_bytes: Any) -> None:
    result = ingest_bytes(b"y\n1\n2\n3\n")
    assert read_back(result.canonical) == {"y": [1, 2, 3]}


def test_byte_order_mark_is_not_part_of_the_first_name(ingest_bytes: Any) -> None:
    result = ingest_bytes(b"\xef\xbb\xbfa,b\r\n1,x\r\n2,y\r\n")
    assert [c.name for c in result.columns] == ["a", "b"]
    assert read_back(result.canonical) == {"a": [1, 2], "b": ["x", "y"]}


def test_utf8_text_survives(ingest_bytes: Any) -> None:
    result = ingest_bytes("city,n\nZürich,1\n東京,2\nZürich,3\n".encode())
    assert read_back(result.canonical)["city"] == ["Zürich", "東京", "Zürich"]
    assert result.columns[0].top_values == [("Zürich", 2), ("東京", 1)]


def test_nan_and_infinities_are_non_finite_and_empty_cells_missing(ingest_bytes: Any) -> None:
    # "NaN" is a missing-value marker (as pandas reads it); "nan" and the infinities are non-finite numbers.
    result = ingest_bytes(b"v,w\n1.5,1\nNaN,2\nnan,3\ninf,4\n-inf,5\n,6\n4.5,7\n")
    values = [1.5, None, math.nan, math.inf, -math.inf, None, 4.5]
    assert same_values(read_back(result.canonical)["v"], values)
    v = result.columns[0]
    assert (v.dtype, v.missing, v.non_finite, v.min, v.max, v.mean, v.std) == ("float64", 2, 3, 1.5, 4.5, 3.0, 1.5)
    assert (v.distinct, v.top_values) == (2, [(1.5, 1), (4.5, 1)])
    assert_profile(v, expected_profile("v", "float64", values))


def test_markers_are_missing_by_default(ingest_bytes: Any) -> None:
    # "NA" and "null" are missing-value markers by default (tests/api/ingest/test_ingest_missing_markers.py
    # covers each marker and the per-upload override).
    result = ingest_bytes(b'region,n\nNA,1\nnull,2\n"",3\nEU,\n')
    assert read_back(result.canonical) == {"region": [None, None, None, "EU"], "n": [1, 2, 3, None]}
    assert result.columns[0].missing == 3


def test_types_of_columns(ingest_bytes: Any) -> None:
    content = (
        b"ints,floats,bools,binary,dates,mixed,blank\n"
        b"1,1,true,1,2024-01-31,1,\n"
        b"-2,2.5,FALSE,0,2024-02-29,x,\n"
        b"3,1e3,True,1,2024-03-01,2,\n"
    )
    result = ingest_bytes(content)
    assert {c.name: c.dtype for c in result.columns} == {
        "ints": "int64",
        "floats": "float64",
        "bools": "bool",
        # 0/1 are numbers, not booleans.
        "binary": "int64",
        # Dates are kept as the text the file has.
        "dates": "string",
        "mixed": "string",
        # Nothing to go on: float64 holding nulls.
        "blank": "float64",
    }
    data = read_back(result.canonical)
    assert data["dates"] == ["2024-01-31", "2024-02-29", "2024-03-01"]
    assert data["bools"] == [True, False, True]
    assert data["blank"] == [None, None, None]
    blank = result.columns[-1]
    assert (blank.missing, blank.min, blank.mean, blank.distinct, blank.top_values) == (3, None, None, 0, [])


def _two_blocks(first_rows: int, late_row: str) -> bytes:
    lines = ["a,b,c"] + [f"{i},{i % 3},x{i % 2}" for i in range(first_rows)] + [late_row]
    return ("\n".join(lines) + "\n").encode()


def test_int_column_that_turns_float_after_the_first_block(ingest_bytes: Any, small_blocks: int) -> None:
    content = _two_blocks(120, "2.5,7,x1")
    assert content.index(b"2.5") > 3 * small_blocks
    result = ingest_bytes(content)
    a_values: list[Any] = [float(i) for i in range(120)] + [2.5]
    assert read_back(result.canonical)["a"] == a_values
    assert [c.dtype for c in result.columns] == ["float64", "int64", "string"]
    assert_profile(result.columns[0], expected_profile("a", "float64", a_values))
    assert_profile(result.columns[1], expected_profile("b", "int64", [i % 3 for i in range(120)] + [7]))


def test_numeric_column_that_turns_text_after_the_first_block(ingest_bytes: Any, small_blocks: int) -> None:
    result = ingest_bytes(_two_blocks(120, "5,unknown,x0"))
    b_values = [str(i % 3) for i in range(120)] + ["unknown"]
    assert read_back(result.canonical)["b"] == b_values
    assert [c.dtype for c in result.columns] == ["int64", "string", "string"]
    assert_profile(result.columns[1], expected_profile("b", "string", b_values))
    assert result.columns[1].top_values == [("0", 40), ("1", 40), ("2", 40), ("unknown", 1)]


def test_columns_empty_in_the_first_block_take_their_later_type(ingest_bytes: Any, small_blocks: int) -> None:
    rows = ["n,later_int,later_bool,later_text,never"] + [f"{i},,,," for i in range(100)]
    rows += ["100,7,true,hello,", "101,-8,false,,"]
    result = ingest_bytes(("\n".join(rows) + "\n").encode())
    assert [c.dtype for c in result.columns] == ["int64", "int64", "bool", "string", "float64"]
    data = read_back(result.canonical)
    assert data["later_int"][-3:] == [None, 7, -8]
    assert data["later_bool"][-2:] == [True, False]
    assert data["later_text"][-2:] == ["hello", None]
    assert result.columns[1].missing == 100


def test_a_mismatch_between_discovery_and_arrow_widens_the_column(
    ingest_bytes: Any, small_blocks: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Discovery that reports types too narrow: each disagreement with Arrow's converter widens one step.
    monkeypatch.setattr(CsvSource, "discover", lambda self, names: ["int64", "int64", "bool"])
    result = ingest_bytes(_two_blocks(120, "2.5,text,x1"))
    assert [c.dtype for c in result.columns] == ["float64", "string", "string"]
    assert read_back(result.canonical)["b"][-1] == "text"


def test_many_blocks_profile_equals_numpy_on_the_whole_column(ingest_bytes: Any, small_blocks: int) -> None:
    rng = np.random.default_rng(7)
    n = 400
    x = rng.normal(1e6, 3.0, n)  # a large mean and a small spread: a naive sum of squares would lose it
    k = rng.integers(-50, 50, n)
    cls = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])
    lines = ["x,k,cls"] + [f"{a!r},{b},{c}" for a, b, c in zip(x.tolist(), k.tolist(), cls.tolist(), strict=True)]
    result = ingest_bytes(("\n".join(lines) + "\n").encode())
    assert result.rows == n
    assert pq.ParquetFile(result.canonical).metadata.num_row_groups > 1
    assert_profile(result.columns[0], expected_profile("x", "float64", x.tolist()))
    assert_profile(result.columns[1], expected_profile("k", "int64", k.tolist()))
    assert_profile(result.columns[2], expected_profile("cls", "string", cls.tolist()))
    assert result.columns[0].std == pytest.approx(float(np.std(x)), rel=1e-12)


def test_canonical_parquet_equals_the_csv_values(ingest_bytes: Any, small_blocks: int) -> None:
    rnd = random.Random(3)
    alphabet = 'ab ,;"\n\t|é'
    header = ["name", "count", "ratio", "ok", "note"]
    rows: list[list[Any]] = []
    for i in range(150):
        rows.append(
            [
                f"item {i}",
                rnd.choice([None, rnd.randint(-(10**12), 10**12)]),
                rnd.choice([None, rnd.uniform(-1e3, 1e3), 0.0, 1e-300]),
                rnd.choice([None, True, False]),
                rnd.choice([None, "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 12)))]),
            ]
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        # A cell of spaces and tabs alone is blank, so missing (the default markers).
        row[4] = None if row[4] is not None and not row[4].strip(" \t") else row[4]
        writer.writerow(
            [
                ""
                if v is None
                else ("true" if v is True else "false" if v is False else repr(v) if isinstance(v, float) else v)
                for v in row
            ]
        )
    result = ingest_bytes(buffer.getvalue().encode())
    data = read_back(result.canonical)
    schema = pq.read_schema(result.canonical)
    assert [schema.field(n).type for n in header] == [pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.string()]
    for position, name in enumerate(header):
        column = [row[position] for row in rows]
        assert data[name] == column, name
        kind = {"name": "string", "count": "int64", "ratio": "float64", "ok": "bool", "note": "string"}[name]
        assert_profile(result.columns[position], expected_profile(name, kind, column))


def test_high_cardinality_columns(ingest_bytes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_format, "BLOCK_SIZE", 4096)
    rng = np.random.default_rng(11)
    n = 6000
    # Ids: all distinct. Words: 1500 distinct, a few of them frequent, the frequent ones spread over blocks.
    frequent = [f"common{j}" for j in range(5)]
    words = [frequent[i % 5] if i % 4 == 0 else f"rare{rng.integers(0, 1500)}" for i in range(n)]
    lines = ["id,word,x"] + [f"id{i},{words[i]},{i * 0.5}" for i in range(n)]
    result = ingest_bytes(("\n".join(lines) + "\n").encode())
    ids, word, x = result.columns
    assert (ids.distinct, x.distinct, x.top_values) == (None, None, None)
    # All ids occur once: the top values are some of them, each counted exactly once.
    assert ids.top_values is not None and len(ids.top_values) == TOP_VALUES
    assert all(count == 1 for _, count in ids.top_values)
    assert len({w for w in words}) > DISTINCT_CAP and word.distinct is None
    # Values more frequent than rows / (cap + 1) are never missed, and their counts are exact.
    expected = expected_profile("word", "string", words)
    assert expected.top_values is not None and word.top_values is not None
    assert word.top_values[:5] == expected.top_values[:5]
    assert [value for value, _ in word.top_values[:5]] == sorted(frequent)
    for value, count in word.top_values:
        assert count == words.count(value)
