"""Which format an upload is in, decided by its bytes; the client's file name is only checked against them."""

from __future__ import annotations

import os
from pathlib import Path

from api.ingest.messages import quoted
from core.errors import InvalidInput

PARQUET_MAGIC = b"PAR1"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"

# What a file name's extension claims, and how to say it.
CLAIMED_BY_EXTENSION = {
    "parquet": "parquet",
    "pq": "parquet",
    "h5": "hdf5",
    "hdf5": "hdf5",
    "npz": "npz",
}
FORMAT_NAMES = {"parquet": "a Parquet file", "hdf5": "an HDF5 file", "npz": "an NPZ file"}
FORMAT_LABELS = {"parquet": "Parquet", "hdf5": "HDF5", "npz": "NPZ"}


def detect_format(upload: Path, filename: str | None) -> str:
    """ "csv", "parquet", "npz" or "hdf5". Raises InvalidInput for an empty file or a name that lies."""
    size = upload.stat().st_size
    if size == 0:
        raise InvalidInput("The file is empty.")
    with upload.open("rb") as handle:
        head = handle.read(len(HDF5_MAGIC))
        handle.seek(max(0, size - len(PARQUET_MAGIC)), os.SEEK_SET)
        tail = handle.read(len(PARQUET_MAGIC))
    if head.startswith(PARQUET_MAGIC) and tail == PARQUET_MAGIC and size >= 2 * len(PARQUET_MAGIC):
        found = "parquet"
    elif head.startswith(HDF5_MAGIC):
        found = "hdf5"
    elif head.startswith(ZIP_MAGIC):
        found = "npz"
    else:
        found = "csv"
    claimed = claimed_format(filename)
    if claimed == "parquet" and found == "csv" and head.startswith(PARQUET_MAGIC):
        # Parquet's header without its footer is most likely a cut-off upload. (Unnamed, it is read as
        # text, since a CSV header may well start with "PAR1".)
        raise InvalidInput(
            f"{quoted(filename)} starts like a Parquet file but does not end like one: it is truncated or corrupt."
        )
    if claimed is not None and claimed != found:
        raise InvalidInput(
            f"{quoted(filename)} is named as {FORMAT_LABELS[claimed]} but its content is not {FORMAT_NAMES[claimed]}."
        )
    return found


def claimed_format(filename: str | None) -> str | None:
    if not filename or "." not in filename:
        return None
    return CLAIMED_BY_EXTENSION.get(filename.rsplit(".", 1)[1].strip().lower())
