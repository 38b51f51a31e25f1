"""CSV: the delimiter guessed from a sample, a streaming typed parse into the canonical Parquet, and a
sentence naming the line for every way a file can be malformed.

The parse never holds the file: Arrow reads it block by block as text, the missing-value markers become
nulls, each column is cast to its type, the block is written to Parquet and profiled, and only then is the
next one read. Column types come from the first block; when a later block disagrees (an int column with a
decimal, a numeric one with text), the file is read once more to find every column's type, and converted
again. Type inference and conversion use the same casts, so they cannot disagree.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TextIO, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from api.ingest.messages import byte_count, quoted
from api.ingest.missing import DEFAULT_NA_VALUES, PADDING, MissingMarkers
from api.ingest.table import ARROW_TYPES, TableSink, check_column_names
from api.ingest.types import ColumnProfile, Ingested, IngestLimits
from core.errors import InvalidInput

# Bytes Arrow parses and converts at a time: the unit of type inference (the first block) and of memory
# use, since Arrow keeps some 40 blocks in flight between reading ahead, parsing and converting (about
# 20 MiB at 512 KiB; a 200 MB CSV then ingests with ~100 MiB of RSS growth). A row must fit in one block.
BLOCK_SIZE = 512 << 10
SNIFF_BYTES = 64 << 10
DELIMITERS = (",", ";", "\t", "|")
UTF8_BOM = codecs.BOM_UTF8

# Not "1"/"0": those are numbers.
TRUE_VALUES = ["true", "True", "TRUE"]
FALSE_VALUES = ["false", "False", "FALSE"]

# Where a column goes when a value does not fit its type; string holds anything.
WIDER = {"int64": "float64", "float64": "string", "bool": "string"}

_Result = TypeVar("_Result")


def ingest_csv(
    upload: Path, out_dir: Path, limits: IngestLimits, na_values: Sequence[str] = DEFAULT_NA_VALUES
) -> Ingested:
    delimiter, header_fields, header_complete = detect_delimiter(upload)
    if header_fields > limits.max_columns:
        # Known from the sample alone, before Arrow parses a block that wide.
        count = header_fields if header_complete else f"at least {header_fields}"
        raise InvalidInput(f"The file has {count} columns; the limit is {limits.max_columns}.")
    source = CsvSource(upload, delimiter, na_values)
    names, kinds = source.probe()
    check_column_names(names, limits, "in the header")
    discovered = False
    while True:
        try:
            rows, profiles, canonical = source.convert(names, kinds, out_dir)
            break
        except TypeDrift as drift:
            if not discovered:
                kinds = source.discover(names)
                discovered = True
            elif kinds[drift.column] in WIDER:
                # The discovery and the conversion disagreed on a value (they share their casts, so this is a
                # safety net); widening one step per disagreement always ends, at string at the latest.
                kinds[drift.column] = WIDER[kinds[drift.column]]
            else:
                column = quoted(names[drift.column]) if drift.column < len(names) else f"#{drift.column + 1}"
                raise InvalidInput(f"Column {column} could not be read as text.") from None
    return Ingested(
        format="csv", kind="table", rows=rows, columns=profiles, canonical=canonical, na_values=tuple(na_values)
    )


class TypeDrift(Exception):
    """A value in a later block does not fit the type the column was given."""

    def __init__(self, column: int) -> None:
        super().__init__(column)
        self.column = column


def detect_delimiter(upload: Path) -> tuple[str, int, bool]:
    """The delimiter, the number of fields the header has in the sample, and whether the sample holds the
    whole header (if not, the count is a lower bound).

    Each candidate splits the sample with Python's csv module (so quoted delimiters and newlines do not
    count); the one whose rows all have the header's width wins, then the wider one, then the order of
    DELIMITERS. Unlike csv.Sniffer this needs the header to split, which makes a text column full of
    semicolons no reason to pick ";".
    """
    with upload.open("rb") as handle:
        raw = handle.read(SNIFF_BYTES + 1)
    truncated = len(raw) > SNIFF_BYTES
    raw = raw[:SNIFF_BYTES].removeprefix(UTF8_BOM)
    sample = raw.decode("utf-8", errors="replace")
    best: tuple[float, int] = (-1.0, 0)
    chosen, chosen_width, complete_header = DELIMITERS[0], 1, True
    for delimiter in DELIMITERS:
        try:
            rows = [row for row in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter) if row]
        except csv.Error:
            continue
        if not rows:
            continue
        header_width = len(rows[0])
        complete = rows[:-1] if truncated and len(rows) > 1 else rows
        agreement = sum(len(row) == header_width for row in complete) / len(complete)
        score = (agreement, header_width)
        if header_width > 1 and score > best:
            best, chosen, chosen_width = score, delimiter, header_width
            complete_header = not truncated or len(rows) > 1
    return chosen, chosen_width, complete_header


class CsvSource:
    """One uploaded CSV file and the parse options that fit it."""

    def __init__(self, upload: Path, delimiter: str, na_values: Sequence[str] = DEFAULT_NA_VALUES) -> None:
        self.upload = upload
        self.delimiter = delimiter
        self.markers = MissingMarkers(na_values)

    def probe(self) -> tuple[list[str], list[str]]:
        """Column names, and each column's narrowest type over the first block."""
        reader = self._guarded(lambda: self._open(None))
        try:
            schema = self._guarded(lambda: reader.schema)
            names = self._guarded(lambda: list(schema.names))
        finally:
            reader.close()
        kinds = ["null"] * len(names)
        batches = self._batches(names)
        try:
            first = next(batches, None)
        finally:
            batches.close()
        if first is not None:
            kinds = self._widen(kinds, first)
        # A column empty throughout the first block: float64 holds its nulls, and a later value that is not
        # a number triggers the full-file type discovery.
        return names, ["float64" if kind == "null" else kind for kind in kinds]

    def convert(self, names: list[str], kinds: list[str], out_dir: Path) -> tuple[int, list[ColumnProfile], Path]:
        with TableSink(out_dir, list(zip(names, kinds, strict=True))) as sink:
            for batch in self._batches(names):
                columns = [
                    _typed(self.markers.apply(column), kind, index)
                    for index, (column, kind) in enumerate(zip(batch.columns, kinds, strict=True))
                ]
                sink.write(pa.RecordBatch.from_arrays(columns, schema=sink.schema))
            if sink.rows == 0:
                raise InvalidInput("The file has a header but no rows.")
            profiles = sink.finish()
        return sink.rows, profiles, sink.path

    def discover(self, names: list[str]) -> list[str]:
        """Every column's narrowest type over the whole file."""
        found = ["null"] * len(names)
        for batch in self._batches(names):
            found = self._widen(found, batch)
        # A column with no value at all is stored as float64 (all null), as pandas would read it.
        return ["float64" if kind == "null" else kind for kind in found]

    def _widen(self, found: list[str], batch: pa.RecordBatch) -> list[str]:
        widened = list(found)
        for index, column in enumerate(batch.columns):
            if widened[index] == "string":
                continue
            column = self.markers.apply(column)
            present = column.drop_null() if column.null_count else column
            if len(present):
                widened[index] = _join(widened[index], _narrowest(present, widened[index]))
        return widened

    def _batches(self, names: list[str]) -> Generator[pa.RecordBatch, None, None]:
        """The file's blocks with every cell as text (no cell null: the markers are applied afterwards)."""
        reader = self._guarded(lambda: self._open(dict.fromkeys(names, pa.string())))
        try:
            while True:
                batch = self._guarded(lambda: _next_or_none(reader))
                if batch is None:
                    return
                yield batch
        finally:
            reader.close()

    def _open(self, types: dict[str, pa.DataType] | None) -> pa_csv.CSVStreamingReader:
        return pa_csv.open_csv(
            str(self.upload),
            read_options=pa_csv.ReadOptions(block_size=BLOCK_SIZE, use_threads=True),
            parse_options=pa_csv.ParseOptions(
                delimiter=self.delimiter,
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=True,
                ignore_empty_lines=True,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=types,
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                check_utf8=True,
            ),
        )

    def _guarded(self, step: Callable[[], _Result]) -> _Result:
        """Runs one Arrow step, turning its errors into InvalidInput (or TypeDrift) with a line number."""
        try:
            return step()
        except UnicodeDecodeError:
            raise self._utf8_error() from None
        except pa.ArrowInvalid as error:
            message = str(error)
            if "invalid UTF8" in message:
                raise self._utf8_error() from None
            if "Empty CSV file" in message:
                # Arrow says this too of a lone header without a line break.
                if self._has_text():
                    raise InvalidInput("The file has a header but no rows.") from None
                raise InvalidInput("The file is empty: it has no header row.") from None
            raise self._parse_error(message) from None

    def _has_text(self) -> bool:
        with self.upload.open("rb") as handle:
            return bool(handle.read(SNIFF_BYTES).removeprefix(UTF8_BOM).strip())

    def _utf8_error(self) -> InvalidInput:
        found = find_invalid_utf8(self.upload)
        if found is None:
            return InvalidInput("The file is not valid UTF-8 text.")
        line, offset = found
        return InvalidInput(
            f"The file is not valid UTF-8: the first bad byte is on line {line} (byte offset {offset}). "
            "Save it as UTF-8 and upload it again."
        )

    def _parse_error(self, arrow_message: str) -> InvalidInput:
        """Finds the offending line with Python's csv module; it runs only once Arrow has failed."""
        too_long = f"longer than {byte_count(BLOCK_SIZE)}"
        last_line = 0
        header_fields: int | None = None
        with self._text() as handle:
            reader = csv.reader(handle, delimiter=self.delimiter, quotechar='"', doublequote=True, strict=False)
            try:
                for record in reader:
                    start, last_line = last_line + 1, reader.line_num
                    if not record:
                        continue
                    if header_fields is None:
                        header_fields = len(record)
                    elif len(record) != header_fields:
                        return InvalidInput(f"Line {start} has {len(record)} fields; the header has {header_fields}.")
            except csv.Error:
                # Python's field size limit (128 KiB): one enormous field, or a quote left open.
                return InvalidInput(
                    f"The row starting on line {last_line + 1} cannot be read: a quote on it is never closed, "
                    f"or it is {too_long}."
                )
        if "straddl" in arrow_message:
            line = self._unclosed_quote_line()
            if line is not None:
                return InvalidInput(f"The quote opened in the row starting on line {line} is never closed.")
            return InvalidInput(f"The file has a row {too_long}, which is more than can be read.")
        # Arrow quotes the offending row, which can be long.
        detail = arrow_message if len(arrow_message) <= 200 else arrow_message[:197] + "..."
        return InvalidInput(f"The file is not a readable CSV file: {detail}")

    def _unclosed_quote_line(self) -> int | None:
        """Where the record that runs into the end of the file inside quotes starts, if one does."""
        last_line = 0
        with self._text() as handle:
            reader = csv.reader(handle, delimiter=self.delimiter, quotechar='"', doublequote=True, strict=True)
            try:
                for _ in reader:
                    last_line = reader.line_num
            except csv.Error as error:
                return last_line + 1 if "unexpected end of data" in str(error) else None
        return None

    def _text(self) -> TextIO:
        return self.upload.open("r", encoding="utf-8-sig", errors="replace", newline="")


def find_invalid_utf8(upload: Path, chunk_bytes: int = 1 << 20) -> tuple[int, int] | None:
    """(line, byte offset) of the first byte that is not UTF-8, reading the file a chunk at a time."""
    offset = 0
    lines = 0
    carry = b""
    with upload.open("rb") as handle:
        while True:
            chunk = handle.read(chunk_bytes)
            data = carry + chunk
            if not data:
                return None
            try:
                data.decode("utf-8")
                good = len(data)
            except UnicodeDecodeError as error:
                cut_short = error.reason == "unexpected end of data" and error.end == len(data)
                if chunk and cut_short:
                    # A character split by the chunk boundary: decode it with the next chunk.
                    good = error.start
                else:
                    return lines + data.count(b"\n", 0, error.start) + 1, offset + error.start
            lines += data.count(b"\n", 0, good)
            offset += good
            carry = data[good:]
            if not chunk:
                return None


def _next_or_none(reader: pa_csv.CSVStreamingReader) -> pa.RecordBatch | None:
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None


_BOOL_TEXT = pa.array(TRUE_VALUES + FALSE_VALUES)
_TRUE_TEXT = pa.array(TRUE_VALUES)


def _typed(column: pa.Array, kind: str, index: int) -> pa.Array:
    """Text (markers already null) as the column's type; TypeDrift(index) when a value does not fit it."""
    if kind == "string":
        return column
    # Numbers and booleans may have spaces and tabs around them.
    trimmed = pc.utf8_trim(column, characters=PADDING)
    if kind == "bool":
        known = pc.is_in(trimmed, value_set=_BOOL_TEXT)
        if pc.any(pc.and_(pc.invert(known), pc.is_valid(trimmed))).as_py():
            raise TypeDrift(index)
        return pc.if_else(pc.is_valid(trimmed), pc.is_in(trimmed, value_set=_TRUE_TEXT), pa.scalar(None, pa.bool_()))
    try:
        return pc.cast(trimmed, ARROW_TYPES[kind])
    except pa.ArrowInvalid:
        raise TypeDrift(index) from None


def _narrowest(values: pa.Array, current: str) -> str:
    """The narrowest type, no narrower than `current` allows, that holds every (non-null) text value."""
    # Spaces and tabs around a number or boolean do not make it text.
    trimmed = pc.utf8_trim(values, characters=PADDING)
    if current in ("null", "bool") and pc.all(pc.is_in(trimmed, value_set=_BOOL_TEXT)).as_py():
        return "bool"
    if current in ("null", "int64") and _casts(trimmed, pa.int64()):
        return "int64"
    if current in ("null", "int64", "float64") and _casts(trimmed, pa.float64()):
        return "float64"
    return "string"


def _casts(values: pa.Array, target: pa.DataType) -> bool:
    try:
        pc.cast(values, target)
    except pa.ArrowInvalid:
        return False
    return True


def _join(a: str, b: str) -> str:
    if a == "null" or a == b:
        return b
    if {a, b} == {"int64", "float64"}:
        return "float64"
    return "string"
