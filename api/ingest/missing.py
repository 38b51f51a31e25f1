"""Missing-value markers: the cell texts that mean "no value", as pandas and R write them.

CSV: every column's cells are compared with the markers before their types are inferred, so a numeric
column with "NA" in it stays numeric. Parquet: text columns only (numbers there have real nulls and NaN).
NPZ and HDF5 arrays: none (X holds numbers, y labels; NaN is counted as non-finite).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

# Cells read as missing unless an upload sends its own `na_values`: what pandas and R write for a missing
# value, and what spreadsheets and databases export ("?" is the UCI repository's marker). A cell matches
# after the spaces and tabs around it are removed, so "" also stands for blank (whitespace-only) cells.
# "NaN" is missing, as pandas reads it; "nan", "inf" and "-inf" stay numbers, counted as non-finite.
# A file whose "NA" means North America sends its own list without it, such as ["", "?"].
DEFAULT_NA_VALUES: tuple[str, ...] = ("", "NA", "N/A", "NaN", "null", "NULL", "None", "?")
# Spaces and tabs around a cell's text are not part of it, for markers, numbers and booleans alike.
PADDING = " \t"


class MissingMarkers:
    """Turns the cells of a text column that match one of `na_values` into nulls."""

    def __init__(self, na_values: Sequence[str]) -> None:
        self.na_values = tuple(na_values)
        self._set = pa.array(sorted({marker.strip(PADDING) for marker in na_values}), type=pa.string())

    def apply(self, column: pa.Array) -> pa.Array:
        if len(self._set) == 0 or len(column) == 0:
            return column
        marked = pc.is_in(pc.utf8_trim(column, characters=PADDING), value_set=self._set)
        if not pc.any(marked).as_py():
            return column
        return pc.if_else(marked, pa.scalar(None, column.type), column)
