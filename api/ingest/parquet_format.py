"""Parquet: the schema checked against the four canonical types, then a batch-by-batch rewrite.

Both the size the footer declares and the size the batches actually decode to are held to the limit:
a dictionary-encoded column can declare a few kilobytes and decode to gigabytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from api.ingest.messages import byte_count, quoted
from api.ingest.missing import DEFAULT_NA_VALUES, MissingMarkers
from api.ingest.table import ARROW_TYPES, TableSink, check_column_names
from api.ingest.types import Ingested, IngestLimits
from core.errors import InvalidInput

BATCH_ROWS = 1 << 16

# pandas writes an unnamed index (any but a plain RangeIndex) as a column with this name; it numbers rows
# and is no feature, so it is left out. A named index is kept: its name says someone chose it.
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")
_BAD_UTF8_AT = re.compile(r"Invalid UTF8 sequence at string index (\d+)")

_CORRUPT = "The Parquet file is corrupt or truncated and cannot be read."
# A damaged footer can also hold names that are not UTF-8 (UnicodeDecodeError, a ValueError).
_READ_ERRORS = (pa.ArrowException, OSError, ValueError)


def ingest_parquet(
    upload: Path, out_dir: Path, limits: IngestLimits, na_values: Sequence[str] = DEFAULT_NA_VALUES
) -> Ingested:
    markers = MissingMarkers(na_values)
    try:
        parquet = pq.ParquetFile(upload)
    except _READ_ERRORS:
        raise InvalidInput(_CORRUPT) from None
    with parquet:
        try:
            # Names are decoded here, where a damaged footer's bytes that are not UTF-8 fail as corruption.
            fields = [(field.name, field.type) for field in parquet.schema_arrow]
            declared = _uncompressed_bytes(parquet.metadata)
            declared_rows = parquet.metadata.num_rows
        except _READ_ERRORS:
            raise InvalidInput(_CORRUPT) from None
        names, kinds = _columns(fields, limits)
        if declared > limits.max_decompressed_bytes:
            raise InvalidInput(
                f"The Parquet file decompresses to {byte_count(declared)}; the limit is "
                f"{byte_count(limits.max_decompressed_bytes)}."
            )
        if declared_rows == 0:
            raise InvalidInput("The Parquet file has no rows.")
        with TableSink(out_dir, list(zip(names, kinds, strict=True))) as sink:
            decoded = 0
            for batch in _batches(parquet, names):
                decoded += batch.nbytes
                if decoded > limits.max_decompressed_bytes:
                    raise InvalidInput(
                        f"The Parquet file decodes to more than {byte_count(limits.max_decompressed_bytes)}, the limit."
                    )
                columns = [
                    _convert(batch.column(index), name, kind, sink.rows, markers)
                    for index, (name, kind) in enumerate(zip(names, kinds, strict=True))
                ]
                sink.write(pa.RecordBatch.from_arrays(columns, schema=sink.schema))
            if sink.rows == 0:
                raise InvalidInput("The Parquet file has no rows.")
            profiles = sink.finish()
    return Ingested(
        format="parquet",
        kind="table",
        rows=sink.rows,
        columns=profiles,
        canonical=sink.path,
        na_values=markers.na_values,
    )


def _columns(fields: list[tuple[str, pa.DataType]], limits: IngestLimits) -> tuple[list[str], list[str]]:
    """Names and canonical kinds of the columns kept, or InvalidInput for the first one that cannot be."""
    kept = [(name, arrow_type) for name, arrow_type in fields if not _PANDAS_INDEX.fullmatch(name)]
    names = [name for name, _ in kept]
    check_column_names(names, limits, "in the Parquet schema")
    kinds = []
    for name, arrow_type in kept:
        kind = canonical_kind(arrow_type)
        if kind is None:
            raise InvalidInput(
                f"Column {quoted(name)} has type {arrow_type}, which is not supported; "
                "columns must hold numbers, booleans or text."
            )
        kinds.append(kind)
    return names, kinds


def canonical_kind(arrow_type: pa.DataType) -> str | None:
    """Which of the four canonical types a Parquet column becomes, or None when it cannot be used."""
    if pa.types.is_dictionary(arrow_type):
        return canonical_kind(arrow_type.value_type)
    if pa.types.is_integer(arrow_type):
        return "int64"
    # Decimals (warehouse NUMERIC columns) become float64, as any learner would read them anyway.
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type) or pa.types.is_null(arrow_type):
        return "float64"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return "string"
    return None


def _uncompressed_bytes(metadata: pq.FileMetaData) -> int:
    # The row groups' totals, not their column chunks': pyarrow aborts the whole process (std::terminate)
    # when it builds the metadata of a column chunk whose size statistics are corrupt.
    return sum(max(0, metadata.row_group(group).total_byte_size) for group in range(metadata.num_row_groups))


def _batches(parquet: pq.ParquetFile, names: list[str]) -> Iterator[pa.RecordBatch]:
    batches = iter(parquet.iter_batches(batch_size=BATCH_ROWS, columns=names, use_threads=True))
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except _READ_ERRORS:
            raise InvalidInput(_CORRUPT) from None
        yield batch


def _convert(column: pa.Array, name: str, kind: str, rows_before: int, markers: MissingMarkers) -> pa.Array:
    """The column as its canonical type, text matching a missing-value marker as null; `rows_before` (rows
    of earlier batches) places a bad value."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    target = ARROW_TYPES[kind]
    if column.type != target:
        try:
            column = pc.cast(column, target)
        except pa.ArrowInvalid:
            raise InvalidInput(
                f"Column {quoted(name)} holds a value that does not fit {kind} (type {column.type} in the file)."
            ) from None
    if kind == "string":
        # Parquet readers trust that text columns hold UTF-8; a file is not made to.
        try:
            column.validate(full=True)
        except pa.ArrowInvalid as error:
            found = _BAD_UTF8_AT.search(str(error))
            where = f" (row {rows_before + int(found.group(1)) + 1})" if found else ""
            raise InvalidInput(f"Column {quoted(name)} holds text that is not valid UTF-8{where}.") from None
        column = markers.apply(column)
    return column
