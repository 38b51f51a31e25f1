"""The canonical form of a table: a Parquet file written batch by batch while its profile accumulates."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

from api.ingest.messages import quoted
from api.ingest.profile import ColumnAccumulator
from api.ingest.types import ColumnProfile, IngestLimits
from core.errors import InvalidInput

ARROW_TYPES: dict[str, pa.DataType] = {
    "float64": pa.float64(),
    "int64": pa.int64(),
    "bool": pa.bool_(),
    "string": pa.string(),
}

CANONICAL_TABLE = "data.parquet"
RECOUNT_BATCH_ROWS = 1 << 16
# Batches are gathered into row groups of about this much Arrow data: readers like row groups of megabytes,
# and the pending batches are the writer's whole memory cost.
ROW_GROUP_BYTES = 8 << 20


def check_column_names(names: list[str], limits: IngestLimits, where: str) -> None:
    """Every column named, each name once, and no more columns than the limit. `where`: "in the header"..."""
    if not names:
        raise InvalidInput(f"The file has no columns {where}.")
    if len(names) > limits.max_columns:
        raise InvalidInput(f"The file has {len(names)} columns; the limit is {limits.max_columns}.")
    first_seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if not name.strip():
            raise InvalidInput(f"Column {position} has an empty name {where}; every column needs a name.")
        if name in first_seen:
            raise InvalidInput(
                f"The column name {quoted(name)} appears twice {where} (columns {first_seen[name]} and {position}); "
                "column names must be unique."
            )
        first_seen[name] = position


def canonical_schema(columns: list[tuple[str, str]]) -> pa.Schema:
    return pa.schema([pa.field(name, ARROW_TYPES[kind]) for name, kind in columns])


class TableSink:
    """Writes out_dir/data.parquet from batches of the canonical schema, profiling them on the way.

    The file is written under a temporary name and only renamed on `finish`, so a failed ingest
    leaves nothing that looks like a dataset behind.
    """

    def __init__(self, out_dir: Path, columns: list[tuple[str, str]]) -> None:
        self.schema = canonical_schema(columns)
        self.path = out_dir / CANONICAL_TABLE
        self._partial = out_dir / f".{CANONICAL_TABLE}.partial"
        self._accumulators = [ColumnAccumulator(name, kind) for name, kind in columns]
        self.rows = 0
        # Dictionary encoding pays off for text (repeated categories) and is wasted work on numbers,
        # where it was half the time of ingesting a large numeric CSV.
        text = [
            field.name
            for field in self.schema
            if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
        ]
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self._partial, self.schema, use_dictionary=text)
        self._pending: list[pa.RecordBatch] = []
        self._pending_bytes = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        for accumulator, column in zip(self._accumulators, batch.columns, strict=True):
            accumulator.add(column)
        self.rows += batch.num_rows
        self._pending.append(batch)
        self._pending_bytes += batch.nbytes
        if self._pending_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._pending and self._writer is not None:
            rows = sum(batch.num_rows for batch in self._pending)
            self._writer.write_table(pa.Table.from_batches(self._pending, schema=self.schema), row_group_size=rows)
        self._pending = []
        self._pending_bytes = 0

    def finish(self) -> list[ColumnProfile]:
        """Closes the file, settles the counts that need a second look, and moves it into place."""
        self._flush()
        self._close()
        owed = [(i, acc) for i, acc in enumerate(self._accumulators) if acc.needs_recount]
        if owed:
            with pq.ParquetFile(self._partial) as reader:
                for index, accumulator in owed:
                    name = self.schema.names[index]
                    accumulator.recount(
                        batch.column(0) for batch in reader.iter_batches(batch_size=RECOUNT_BATCH_ROWS, columns=[name])
                    )
        unknown = [(i, acc) for i, acc in enumerate(self._accumulators) if acc.needs_uniqueness_check]
        if unknown:
            with pq.ParquetFile(self._partial) as reader:
                for index, accumulator in unknown:
                    accumulator.check_unique(reader.read(columns=[self.schema.names[index]]).column(0))
        profiles = [accumulator.profile() for accumulator in self._accumulators]
        self._partial.replace(self.path)
        return profiles

    def abort(self) -> None:
        self._pending = []
        self._close()
        self._partial.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> TableSink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is not None:
            self.abort()
