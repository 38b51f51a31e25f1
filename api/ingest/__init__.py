"""Uploaded files -> a canonical stored form and a profile, or an InvalidInput sentence saying what is wrong.

A pure library: no database, no HTTP. `ingest` decides the format from the bytes (the client's file name
is only checked against them, never used as a path), validates, writes out_dir/data.parquet (tables) or
out_dir/data.npz (arrays), and profiles every column on the way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from api.ingest.csv_format import ingest_csv
from api.ingest.detect import detect_format
from api.ingest.hdf5_format import ingest_hdf5
from api.ingest.missing import DEFAULT_NA_VALUES
from api.ingest.npz_format import ingest_npz
from api.ingest.parquet_format import ingest_parquet
from api.ingest.types import DISTINCT_CAP, TOP_VALUES, ColumnProfile, Ingested, IngestLimits
from core.errors import InvalidInput

__all__ = [
    "DEFAULT_NA_VALUES",
    "DISTINCT_CAP",
    "TOP_VALUES",
    "ColumnProfile",
    "IngestLimits",
    "Ingested",
    "InvalidInput",
    "ingest",
]

_ARRAY_READERS = {"npz": ingest_npz, "hdf5": ingest_hdf5}


def ingest(
    upload: Path,
    filename: str | None,
    out_dir: Path,
    limits: IngestLimits,
    na_values: Sequence[str] = DEFAULT_NA_VALUES,
) -> Ingested:
    """Reads `upload` (any of CSV, Parquet, NPZ with X/y, HDF5 with X/y) into out_dir and profiles it.

    `filename` is the client's name for the file: only its extension is compared with the content, and it
    is quoted in messages. `out_dir` (created if missing) should belong to this upload alone. `na_values`
    are the cell texts read as missing (api/ingest/missing.py): in every CSV column and in Parquet's text
    columns; arrays have none.

    Raises InvalidInput (422) with a sentence naming the line, column or limit for anything wrong with
    the content. Nothing named data.* is left in out_dir unless it succeeds.
    """
    found = detect_format(upload, filename)
    out_dir.mkdir(parents=True, exist_ok=True)
    if found == "csv":
        return ingest_csv(upload, out_dir, limits, na_values)
    if found == "parquet":
        return ingest_parquet(upload, out_dir, limits, na_values)
    return _ARRAY_READERS[found](upload, out_dir, limits)
