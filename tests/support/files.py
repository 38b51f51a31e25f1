"""Dataset files in every accepted format, written the way users' tools write them."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def csv_bytes(header: list[str], rows: list[list[Any]], delimiter: str = ",") -> bytes:
    lines = [delimiter.join(header)] + [delimiter.join("" if v is None else str(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def parquet_bytes(columns: dict[str, list[Any]]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    sink = io.BytesIO()
    np.savez(sink, **arrays)  # type: ignore[arg-type]
    return sink.getvalue()


def hdf5_bytes(tmp_path: Path, **arrays: np.ndarray) -> bytes:
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as file:
        for name, array in arrays.items():
            file.create_dataset(name, data=array)
    return path.read_bytes()


def iris_like(n: int = 60, seed: int = 0) -> tuple[list[str], list[list[Any]]]:
    """Numeric features, a text feature and a text target: a small table a user might export."""
    rng = np.random.default_rng(seed)
    species = np.array(["setosa", "versicolor", "virginica"])[np.arange(n) % 3]
    colour = np.array(["blue", "red"])[rng.integers(0, 2, n)]
    rows = []
    for i in range(n):
        centre = {"setosa": 1.0, "versicolor": 3.0, "virginica": 5.0}[str(species[i])]
        rows.append(
            [
                round(centre + rng.normal(0, 0.3), 3),
                round(centre * 0.5 + rng.normal(0, 0.2), 3),
                str(colour[i]),
                str(species[i]),
            ]
        )
    return ["length", "width", "colour", "species"], rows
