"""How a table's columns become a model's input features, shared by the worker (training) and the
API (predictions from records), so both encode a row the same way.

Numeric columns are used as they are (missing values become NaN: refused, dropped or imputed by the
job's `training.missing`), bool columns as 0/1, and string columns one-hot, one feature per category
in sorted order. A missing or unseen category encodes as all zeros, as scikit-learn's
OneHotEncoder(handle_unknown="ignore") does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# More categories than this in one string column would make a huge, sparse one-hot block. The default of
# the REGTRAIN_MAX_CATEGORIES setting (core/settings.py), which the API applies at upload (a column's role)
# and at submit; the worker encodes the columns the API accepted.
MAX_CATEGORIES = 1000


@dataclass(frozen=True)
class FeatureColumn:
    name: str
    kind: Literal["numeric", "categorical"]
    categories: tuple[Any, ...] = ()

    @property
    def width(self) -> int:
        return 1 if self.kind == "numeric" else len(self.categories)

    @property
    def feature_names(self) -> list[str]:
        return [self.name] if self.kind == "numeric" else [f"{self.name}={c}" for c in self.categories]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "categories": list(self.categories)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureColumn:
        return cls(name=data["name"], kind=data["kind"], categories=tuple(data.get("categories", ())))


def feature_names(layout: Sequence[FeatureColumn]) -> list[str]:
    return [name for column in layout for name in column.feature_names]


def width(layout: Sequence[FeatureColumn]) -> int:
    return sum(column.width for column in layout)


def encode(layout: Sequence[FeatureColumn], columns: Mapping[str, Any]) -> np.ndarray:
    """(rows, width(layout)) float64 features. `columns` maps names to Arrow arrays or to sequences of
    values (None for missing); missing numbers become NaN."""
    arrays = {
        name: values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
        for name, values in columns.items()
    }
    n = len(next(iter(arrays.values()))) if arrays else 0
    out = np.zeros((n, width(layout)), dtype=np.float64)
    offset = 0
    for column in layout:
        values = arrays[column.name]
        if column.kind == "numeric":
            out[:, offset] = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        else:
            positions = pc.index_in(pc.cast(values, pa.string()), value_set=pa.array(column.categories, pa.string()))
            found = positions.to_numpy(zero_copy_only=False)
            rows = np.flatnonzero(~np.isnan(found))
            out[rows, offset + found[rows].astype(np.int64)] = 1.0
        offset += column.width
    return out
