"""HDF5: datasets X and y at the root, described (shape, dtype, storage) before they are read.

Data must live in the file itself: an external link (or a soft link that may lead through one), external
raw storage or a virtual dataset would make the server read other files on its own disk on the client's
say-so.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from api.ingest.arrays import REQUIREMENT, ArrayInfo, check_layout, finish_arrays
from api.ingest.messages import byte_count, listing
from api.ingest.types import Ingested, IngestLimits
from core.errors import InvalidInput

WHERE = "the HDF5 file"
_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)


def ingest_hdf5(upload: Path, out_dir: Path, limits: IngestLimits) -> Ingested:
    try:
        handle = h5py.File(upload, "r")
    except (OSError, ValueError):
        raise InvalidInput(
            "The file starts like HDF5 but cannot be opened as HDF5: it is truncated or corrupt."
        ) from None
    with handle:
        try:
            x_set, y_set = _dataset(handle, "X"), _dataset(handle, "y")
            x_info, y_info = _describe(x_set, "X"), _describe(y_set, "y")
        except _H5_ERRORS:
            # Damaged object headers, heaps or B-trees surface from h5py as any of these.
            raise InvalidInput("The HDF5 file is corrupt: its datasets cannot be listed or described.") from None
        total = x_info.nbytes + y_info.nbytes
        if total > limits.max_decompressed_bytes:
            raise InvalidInput(
                f"X and y in the HDF5 file hold {byte_count(total)} once decompressed; the limit is "
                f"{byte_count(limits.max_decompressed_bytes)}."
            )
        check_layout(WHERE, x_info, y_info, limits)
        x, y = _read(x_set, "X"), _read(y_set, "y")
    return finish_arrays("hdf5", WHERE, x, y, out_dir)


def _dataset(handle: h5py.File, key: str) -> h5py.Dataset:
    link = handle.get(key, getlink=True)
    if link is None:
        raise InvalidInput(
            f"The HDF5 file has no dataset '{key}' at its root; {REQUIREMENT}. "
            f"Its root holds {listing(sorted(handle.keys()))}."
        )
    if isinstance(link, h5py.ExternalLink):
        raise InvalidInput(f"'{key}' in the HDF5 file is a link to another file; X and y must be stored in the file.")
    if not isinstance(link, h5py.HardLink):
        # A soft link's path may lead through an external link, which h5py would follow on its own.
        raise InvalidInput(f"'{key}' in the HDF5 file is a soft link; store X and y as datasets at the root.")
    found = handle.get(key)
    if not isinstance(found, h5py.Dataset):
        what = "a group" if isinstance(found, h5py.Group) else "a named datatype"
        raise InvalidInput(f"'{key}' in the HDF5 file is {what}, not a dataset; {REQUIREMENT} as datasets.")
    if found.is_virtual or found.external:
        raise InvalidInput(
            f"Dataset '{key}' in the HDF5 file keeps its data outside the file (virtual or external storage); "
            "X and y must be stored in the file."
        )
    return found


def _describe(dataset: h5py.Dataset, key: str) -> ArrayInfo:
    dtype = dataset.dtype
    if h5py.check_string_dtype(dtype) is not None and dtype.kind == "O":
        raise InvalidInput(
            f"Dataset '{key}' in the HDF5 file holds variable-length strings; store them as fixed-length "
            "strings (NumPy 'S' dtype) or as numbers."
        )
    if dtype.kind == "O" or h5py.check_vlen_dtype(dtype) is not None:
        raise InvalidInput(
            f"Dataset '{key}' in the HDF5 file holds variable-length or object data, which is not supported."
        )
    if dtype.names is not None:
        raise InvalidInput(
            f"Dataset '{key}' in the HDF5 file holds compound records (fields {', '.join(dtype.names)}); "
            "it must be a plain array of numbers (or, for y, of strings)."
        )
    if dataset.shape is None:
        raise InvalidInput(f"Dataset '{key}' in the HDF5 file holds no data.")
    return ArrayInfo(shape=tuple(int(d) for d in dataset.shape), dtype=np.dtype(dtype))


def _read(dataset: h5py.Dataset, key: str) -> np.ndarray:
    try:
        return np.asarray(dataset[()])
    except _H5_ERRORS:
        raise InvalidInput(
            f"Dataset '{key}' in the HDF5 file cannot be read: it is corrupt, or compressed with a filter "
            "this service does not have."
        ) from None
