"""Array datasets (X features, y targets) from NPZ or HDF5: the rules both share, the canonical NPZ and
the profile of X and y.

The layout is checked from shapes and dtypes alone (the .npy headers, the HDF5 dataset descriptions)
before a byte of data is read, so a file that would not do never costs its size in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from api.ingest.profile import ColumnAccumulator, profile_features
from api.ingest.types import ColumnProfile, Ingested, IngestLimits
from core.errors import InvalidInput

CANONICAL_ARRAYS = "data.npz"
# Rows of X are converted to float64 for its statistics this many bytes at a time.
PROFILE_CHUNK_BYTES = 8 << 20
NUMERIC_KINDS = "biuf"
REQUIREMENT = "it needs X (features) and y (targets)"


@dataclass(frozen=True)
class ArrayInfo:
    """An array as its header describes it, before it is read."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def check_layout(where: str, x: ArrayInfo, y: ArrayInfo, limits: IngestLimits) -> None:
    """X numeric (N, F), (N, H, W) or (N, C, H, W); y numeric or text, (N,) or (N, 1); N > 0; the column limit.

    `where` names the file in messages: "the NPZ file", "the HDF5 file".
    """
    if x.dtype.kind not in NUMERIC_KINDS:
        raise InvalidInput(f"X in {where} must hold numbers; its dtype is {x.dtype}.")
    if len(x.shape) not in (2, 3, 4):
        raise InvalidInput(
            f"X in {where} has shape {x.shape}; it needs 2 dimensions (rows, features), "
            "3 (rows, height, width) or 4 (rows, channels, height, width)."
        )
    if not (len(y.shape) == 1 or (len(y.shape) == 2 and y.shape[1] == 1)):
        raise InvalidInput(
            f"y in {where} has shape {y.shape}; it needs one target per row: shape (rows,) or (rows, 1)."
        )
    if y.dtype.kind not in NUMERIC_KINDS + "US":
        raise InvalidInput(f"y in {where} must hold numbers or text; its dtype is {y.dtype}.")
    if x.shape[0] != y.shape[0]:
        raise InvalidInput(f"X in {where} has {x.shape[0]} rows but y has {y.shape[0]}; they need one target per row.")
    if x.shape[0] == 0:
        raise InvalidInput(f"{where[0].upper()}{where[1:]} has no rows: X and y are empty.")
    per_row = x.shape[1:]
    features = math.prod(per_row)
    if features == 0:
        raise InvalidInput(f"X in {where} has no features: its shape is {x.shape}.")
    if features > limits.max_columns:
        shown = f" ({' x '.join(str(d) for d in per_row)})" if len(per_row) > 1 else ""
        raise InvalidInput(f"X in {where} has {features} features per row{shown}; the limit is {limits.max_columns}.")


def finish_arrays(fmt: str, where: str, x: np.ndarray, y: np.ndarray, out_dir: Path) -> Ingested:
    """Writes out_dir/data.npz (X as (N, F) or (N, C, H, W), y 1-D) and profiles both. Layout already checked."""
    if x.ndim == 3:
        x = x.reshape(x.shape[0], 1, *x.shape[1:])
    y = y.reshape(-1)
    if y.dtype.kind == "S":
        y = _decode(where, y)
    elif y.dtype.kind == "U":
        _check_code_points(where, y)
    columns = [profile_features("X", x, PROFILE_CHUNK_BYTES), profile_targets(y)]
    canonical = out_dir / CANONICAL_ARRAYS
    partial = out_dir / f".{CANONICAL_ARRAYS}.partial"
    try:
        with partial.open("wb") as handle:
            np.savez(handle, X=x, y=y)
        partial.replace(canonical)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Ingested(format=fmt, kind="arrays", rows=int(x.shape[0]), columns=columns, canonical=canonical)


def profile_targets(y: np.ndarray) -> ColumnProfile:
    """y profiled like a table column; its dtype is NumPy's name, or "string" for text."""
    if not y.dtype.isnative:
        # Arrow takes native byte order only; big-endian arrays are legal in NPZ and HDF5.
        y = y.astype(y.dtype.newbyteorder("="))
    if y.dtype.kind == "U":
        kind, values, dtype = "string", pa.array(y), "string"
    elif y.dtype.kind == "b":
        kind, values, dtype = "bool", pa.array(y), y.dtype.name
    elif y.dtype.kind in "iu" and np.can_cast(y.dtype, np.int64):
        kind, values, dtype = "int64", pa.array(y.astype(np.int64, copy=False)), y.dtype.name
    else:
        kind, values, dtype = "float64", pa.array(y.astype(np.float64, copy=False)), y.dtype.name
    accumulator = ColumnAccumulator("y", kind)
    accumulator.add(values)
    if accumulator.needs_recount:
        accumulator.recount([values])
    return accumulator.profile(dtype=dtype, shape=[])


def _decode(where: str, y: np.ndarray) -> np.ndarray:
    try:
        return np.char.decode(y, "utf-8")
    except UnicodeDecodeError:
        for row, item in enumerate(y):
            try:
                bytes(item).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"y in {where} holds bytes that are not valid UTF-8 text at index {row}.") from None
        raise  # NumPy refused the whole but no element alone: not the client's doing


def _check_code_points(where: str, y: np.ndarray) -> None:
    """NumPy text is UTF-32 and takes any 32-bit value; surrogates and values past U+10FFFF are not text."""
    if y.dtype.itemsize == 0 or len(y) == 0:
        return
    codes = np.ascontiguousarray(y.astype(y.dtype.newbyteorder("="), copy=False)).view(np.uint32)
    invalid = ((codes >= 0xD800) & (codes < 0xE000)) | (codes > 0x10FFFF)
    rows = invalid.reshape(len(y), -1).any(axis=1)
    if rows.any():
        raise InvalidInput(f"y in {where} holds characters that are not valid Unicode at index {int(rows.argmax())}.")
