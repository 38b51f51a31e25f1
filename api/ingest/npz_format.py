"""NPZ: a zip of .npy arrays. The zip's entries and the arrays' headers are checked first; numpy.load
(never with pickles) reads X and y only once their declared sizes are known to be honest and bounded.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from api.ingest.arrays import REQUIREMENT, ArrayInfo, check_layout, finish_arrays
from api.ingest.messages import byte_count, listing
from api.ingest.types import Ingested, IngestLimits
from core.errors import InvalidInput

WHERE = "the NPZ file"
_UNREADABLE = "The file starts like an NPZ (zip) archive but is not a readable one: it is truncated or corrupt."
# What reading a damaged, encrypted or exotic zip member can raise.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    zlib.error,
)


def ingest_npz(upload: Path, out_dir: Path, limits: IngestLimits) -> Ingested:
    try:
        with zipfile.ZipFile(upload) as archive:
            total = sum(info.file_size for info in archive.infolist())
            if total > limits.max_decompressed_bytes:
                raise InvalidInput(
                    f"The NPZ file decompresses to {byte_count(total)}; the limit is "
                    f"{byte_count(limits.max_decompressed_bytes)}."
                )
            x_info = _header(archive, "X")
            y_info = _header(archive, "y")
    except _ZIP_ERRORS:
        raise InvalidInput(_UNREADABLE) from None
    check_layout(WHERE, x_info, y_info, limits)
    try:
        with np.load(upload, allow_pickle=False) as arrays:
            x, y = arrays["X"], arrays["y"]
    except ValueError:
        # Headers passed, so this is a body that does not match them.
        raise InvalidInput(_UNREADABLE) from None
    except _ZIP_ERRORS:
        raise InvalidInput(_UNREADABLE) from None
    return finish_arrays("npz", WHERE, x, y, out_dir)


def entry_name(archive: zipfile.ZipFile, key: str) -> str | None:
    """The member numpy.load reads for `key`: the exact name first, then key + ".npy"."""
    names = archive.namelist()
    for candidate in (key, f"{key}.npy"):
        if candidate in names:
            return candidate
    return None


def _header(archive: zipfile.ZipFile, key: str) -> ArrayInfo:
    name = entry_name(archive, key)
    if name is None:
        held = sorted({n.removesuffix(".npy") for n in archive.namelist() if not n.endswith("/")})
        raise InvalidInput(f"The NPZ file has no array '{key}'; {REQUIREMENT}. It holds {listing(held)}.")
    with archive.open(name) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError:
            raise InvalidInput(f"The entry '{name}' in the NPZ file is not a NumPy array (.npy).") from None
    info = ArrayInfo(shape=tuple(int(d) for d in shape), dtype=np.dtype(dtype))
    if info.dtype.hasobject:
        raise InvalidInput(
            f"Array '{key}' in the NPZ file holds Python objects (dtype object), which are never loaded; "
            "save it as numbers (or, for y, as a NumPy string array)."
        )
    # numpy.load allocates what the header declares before reading, so a lying header is caught here.
    if info.nbytes > archive.getinfo(name).file_size:
        raise InvalidInput(
            f"Array '{key}' in the NPZ file declares shape {info.shape} ({info.dtype}), more data than its "
            "entry holds: the file is truncated or corrupt."
        )
    return info
