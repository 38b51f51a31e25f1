"""Bad CSV uploads: each is refused with InvalidInput naming the line, column or limit, and leaves no data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api.ingest import IngestLimits, InvalidInput, csv_format
from api.ingest.csv_format import find_invalid_utf8


def refused(ingest_bytes: Any, content: bytes, limits: IngestLimits | None = None) -> str:
    with pytest.raises(InvalidInput) as caught:
        if limits is None:
            ingest_bytes(content)
        else:
            ingest_bytes(content, limits=limits)
    assert caught.value.status_code == 422
    return caught.value.detail


@pytest.fixture(autouse=True)
def nothing_is_left_behind(out_dir: Path) -> Any:
    yield
    if out_dir.exists():
        assert list(out_dir.iterdir()) == []


def test_empty_file(ingest_bytes: Any) -> None:
    assert refused(ingest_bytes, b"") == "The file is empty."


@pytest.mark.parametrize("content", [b"\n\n\n", b"\xef\xbb\xbf", b"\r\n"])
def test_no_header_row(ingest_bytes: Any, content: bytes) -> None:
    assert refused(ingest_bytes, content) == "The file is empty: it has no header row."


@pytest.mark.parametrize("content", [b"a,b,c\n", b"a,b,c", b"a;b\n\n\n"])
def test_header_only(ingest_bytes: Any, content: bytes) -> None:
    assert refused(ingest_bytes, content) == "The file has a header but no rows."


def test_ragged_row_counts_physical_lines(ingest_bytes: Any) -> None:
    # Line 4-5 is one row (a quoted newline), line 6 is blank; line 7 has a fourth field.
    content = b'a,b,c\n1,2,3\n4,5,6\n7,"eight\nand a half",9\n\n1,2,3,4\n1,2,3\n'
    assert refused(ingest_bytes, content) == "Line 7 has 4 fields; the header has 3."


def test_short_row(ingest_bytes: Any) -> None:
    assert refused(ingest_bytes, b"a,b,c\n1,2,3\n1,2\n") == "Line 3 has 2 fields; the header has 3."


def test_ragged_row_in_a_later_block(ingest_bytes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_format, "BLOCK_SIZE", 128)
    lines = ["x;y"] + [f"{i};{i}" for i in range(200)] + ["1;2;3"]
    message = refused(ingest_bytes, ("\n".join(lines) + "\n").encode())
    assert message == "Line 202 has 3 fields; the header has 2."


def test_invalid_utf8_in_a_value(ingest_bytes: Any) -> None:
    content = b"name,n\nok,1\ncaf\xe9,2\n"
    assert refused(ingest_bytes, content) == (
        "The file is not valid UTF-8: the first bad byte is on line 3 (byte offset 15). "
        "Save it as UTF-8 and upload it again."
    )


def test_invalid_utf8_in_the_header(ingest_bytes: Any) -> None:
    message = refused(ingest_bytes, b"n\xffame,n\nok,1\n")
    assert "line 1 (byte offset 1)" in message


def test_invalid_utf8_after_the_first_block(ingest_bytes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_format, "BLOCK_SIZE", 128)
    lines = [b"word,n"] + [b"w%d,%d" % (i, i) for i in range(100)] + [b"\xc3\x28,1"]
    content = b"\n".join(lines) + b"\n"
    message = refused(ingest_bytes, content)
    assert f"line 102 (byte offset {content.index(bytes([0xC3]))})" in message


def test_invalid_utf8_in_a_column_that_looked_numeric(ingest_bytes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_format, "BLOCK_SIZE", 128)
    lines = [b"a,n"] + [b"x,%d" % i for i in range(100)] + [b"x,4\x80"]
    message = refused(ingest_bytes, b"\n".join(lines) + b"\n")
    assert "line 102" in message


def test_finding_invalid_utf8_across_chunk_boundaries(tmp_path: Path) -> None:
    upload = tmp_path / "text.csv"
    # A valid two-byte character split by the 4-byte chunk boundary, then a bad byte on line 3.
    upload.write_bytes(b"ab\n\xc3\xa9\n\xff")
    assert find_invalid_utf8(upload, chunk_bytes=4) == (3, 6)
    upload.write_bytes("ab\né\n".encode())
    assert find_invalid_utf8(upload, chunk_bytes=4) is None
    # A character cut off by the end of the file.
    upload.write_bytes(b"ab\n\xc3")
    assert find_invalid_utf8(upload, chunk_bytes=2) == (2, 3)


def test_more_columns_than_the_limit(ingest_bytes: Any) -> None:
    header = ",".join(f"c{i}" for i in range(6))
    limits = IngestLimits(max_columns=5, max_decompressed_bytes=1 << 20)
    message = refused(ingest_bytes, f"{header}\n{','.join('1' * 6)}\n".encode(), limits)
    assert message == "The file has 6 columns; the limit is 5."


def test_a_header_wider_than_the_sample(ingest_bytes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_format, "SNIFF_BYTES", 20)
    header = ",".join(f"c{i}" for i in range(12))
    limits = IngestLimits(max_columns=5, max_decompressed_bytes=1 << 20)
    message = refused(ingest_bytes, f"{header}\n{','.join('1' * 12)}\n".encode(), limits)
    assert message == "The file has at least 7 columns; the limit is 5."


def test_more_columns_than_the_limit_beyond_the_sample(ingest_bytes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # A header longer than the delimiter sample: the limit is still enforced on the parsed header.
    monkeypatch.setattr(csv_format, "SNIFF_BYTES", 16)
    header = ",".join(f"column{i}" for i in range(8))
    limits = IngestLimits(max_columns=7, max_decompressed_bytes=1 << 20)
    message = refused(ingest_bytes, f"{header}\n{','.join('1' * 8)}\n".encode(), limits)
    assert message == "The file has 8 columns; the limit is 7."


def test_duplicate_column_names(ingest_bytes: Any) -> None:
    assert refused(ingest_bytes, b"a,b,a\n1,2,3\n") == (
        "The column name 'a' appears twice in the header (columns 1 and 3); column names must be unique."
    )


@pytest.mark.parametrize("header", [b"a,,c", b"a,  ,c", b'a,"",c'])
def test_empty_column_name(ingest_bytes: Any, header: bytes) -> None:
    message = refused(ingest_bytes, header + b"\n1,2,3\n")
    assert message == "Column 2 has an empty name in the header; every column needs a name."


def test_quote_never_closed(ingest_bytes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_format, "BLOCK_SIZE", 128)
    content = b'a,b\n1,2\n3,"open\n' + b"5,6\n" * 100
    assert refused(ingest_bytes, content) == "The quote opened in the row starting on line 3 is never closed."


def test_row_longer_than_a_block(ingest_bytes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_format, "BLOCK_SIZE", 128)
    content = b"a,b\n1,2\n3," + b"x" * 400 + b"\n5,6\n"
    assert refused(ingest_bytes, content) == "The file has a row longer than 128 bytes, which is more than can be read."
