"""HDF5-only concerns: what a dataset is (not a group, not a link elsewhere, not external storage), dtypes
that cannot be used, sizes checked before reading, and files that only look like HDF5."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from api.ingest import IngestLimits, InvalidInput


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    return tmp_path / "cells.h5"


def refused(ingest_file: Any, path: Path, limits: IngestLimits | None = None) -> str:
    with pytest.raises(InvalidInput) as caught:
        if limits is None:
            ingest_file(path, "cells.h5")
        else:
            ingest_file(path, "cells.h5", limits)
    return caught.value.detail


def test_chunked_compressed_datasets_are_read(ingest_file: Any, upload: Path) -> None:
    x = np.random.default_rng(4).integers(0, 255, (64, 10)).astype(np.int16)
    with h5py.File(upload, "w") as handle:
        handle.create_dataset("X", data=x, chunks=(8, 10), compression="gzip")
        handle.create_dataset("y", data=np.arange(64) % 2, compression="gzip")
        handle.create_group("meta").attrs["source"] = "lab"
    result = ingest_file(upload, "cells.hdf5")
    with np.load(result.canonical) as stored:
        np.testing.assert_array_equal(stored["X"], x)
    assert result.columns[1].top_values == [(0, 32), (1, 32)]


def test_soft_links_are_refused(ingest_file: Any, upload: Path, tmp_path: Path) -> None:
    # Through a soft link, h5py would follow an external link further down the path by itself.
    secret = tmp_path / "elsewhere.h5"
    with h5py.File(secret, "w") as handle:
        handle["X"] = np.zeros((3, 2))
    with h5py.File(upload, "w") as handle:
        handle["outside"] = h5py.ExternalLink(str(secret), "/")
        handle["X"] = h5py.SoftLink("/outside/X")
        handle["y"] = np.zeros(3)
    assert refused(ingest_file, upload) == (
        "'X' in the HDF5 file is a soft link; store X and y as datasets at the root."
    )


def test_variable_length_strings(ingest_file: Any, upload: Path) -> None:
    with h5py.File(upload, "w") as handle:
        handle["X"] = np.zeros((2, 2))
        handle["y"] = ["cat", "dog"]  # h5py stores Python strings as variable-length
    assert refused(ingest_file, upload) == (
        "Dataset 'y' in the HDF5 file holds variable-length strings; store them as fixed-length strings "
        "(NumPy 'S' dtype) or as numbers."
    )


def test_variable_length_sequences(ingest_file: Any, upload: Path) -> None:
    with h5py.File(upload, "w") as handle:
        values = handle.create_dataset("X", (2,), dtype=h5py.vlen_dtype(np.float64))
        values[0], values[1] = [1.0], [2.0, 3.0]
        handle["y"] = np.zeros(2)
    assert refused(ingest_file, upload) == (
        "Dataset 'X' in the HDF5 file holds variable-length or object data, which is not supported."
    )


def test_compound_records(ingest_file: Any, upload: Path) -> None:
    with h5py.File(upload, "w") as handle:
        handle["X"] = np.zeros(3, dtype=[("a", "f8"), ("b", "i4")])
        handle["y"] = np.zeros(3)
    assert refused(ingest_file, upload) == (
        "Dataset 'X' in the HDF5 file holds compound records (fields a, b); "
        "it must be a plain array of numbers (or, for y, of strings)."
    )


def test_a_group_is_not_a_dataset(ingest_file: Any, upload: Path) -> None:
    with h5py.File(upload, "w") as handle:
        handle["X/values"] = np.zeros((3, 2))
        handle["y"] = np.zeros(3)
    assert refused(ingest_file, upload) == (
        "'X' in the HDF5 file is a group, not a dataset; it needs X (features) and y (targets) as datasets."
    )


def test_a_link_to_another_file(ingest_file: Any, upload: Path, tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere.h5"
    with h5py.File(secret, "w") as handle:
        handle["X"] = np.zeros((3, 2))
    with h5py.File(upload, "w") as handle:
        handle["X"] = h5py.ExternalLink(str(secret), "X")
        handle["y"] = np.zeros(3)
    assert refused(ingest_file, upload) == (
        "'X' in the HDF5 file is a link to another file; X and y must be stored in the file."
    )


def test_external_raw_storage(ingest_file: Any, upload: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw.bin"
    raw.write_bytes(np.arange(6, dtype=np.float64).tobytes())
    with h5py.File(upload, "w") as handle:
        handle.create_dataset("X", shape=(3, 2), dtype="f8", external=[(str(raw), 0, 48)])
        handle["y"] = np.zeros(3)
    assert refused(ingest_file, upload) == (
        "Dataset 'X' in the HDF5 file keeps its data outside the file (virtual or external storage); "
        "X and y must be stored in the file."
    )


def test_virtual_dataset(ingest_file: Any, upload: Path, tmp_path: Path) -> None:
    source = tmp_path / "source.h5"
    with h5py.File(source, "w") as handle:
        handle["data"] = np.zeros((3, 2))
    layout = h5py.VirtualLayout(shape=(3, 2), dtype="f8")
    layout[:] = h5py.VirtualSource(str(source), "data", shape=(3, 2))
    with h5py.File(upload, "w") as handle:
        handle.create_virtual_dataset("X", layout)
        handle["y"] = np.zeros(3)
    assert "keeps its data outside the file" in refused(ingest_file, upload)


def test_size_is_checked_before_reading(ingest_file: Any, upload: Path) -> None:
    # A chunked dataset never written: a small file that declares 80 MB.
    with h5py.File(upload, "w") as handle:
        handle.create_dataset("X", shape=(1_000_000, 10), dtype="f8", chunks=(1000, 10), compression="gzip")
        handle.create_dataset("y", shape=(1_000_000,), dtype="i1", chunks=(1000,), compression="gzip")
    assert upload.stat().st_size < 100_000
    limits = IngestLimits(max_columns=100, max_decompressed_bytes=10_000_000)
    assert refused(ingest_file, upload, limits) == (
        "X and y in the HDF5 file hold 81,000,000 bytes (77.2 MiB) once decompressed; "
        "the limit is 10,000,000 bytes (9.5 MiB)."
    )


@pytest.mark.parametrize("keep", [8, 100, 1000])
def test_truncated_file(ingest_file: Any, upload: Path, keep: int) -> None:
    with h5py.File(upload, "w") as handle:
        handle["X"] = np.random.default_rng(0).normal(size=(100, 4))
        handle["y"] = np.zeros(100)
    upload.write_bytes(upload.read_bytes()[:keep])
    assert refused(ingest_file, upload) == (
        "The file starts like HDF5 but cannot be opened as HDF5: it is truncated or corrupt."
    )


def test_damaged_chunks(ingest_file: Any, upload: Path) -> None:
    with h5py.File(upload, "w") as handle:
        handle.create_dataset(
            "X", data=np.random.default_rng(0).normal(size=(2000, 4)), chunks=(100, 4), compression="gzip"
        )
        handle["y"] = np.zeros(2000)
    content = bytearray(upload.read_bytes())
    middle = len(content) // 2
    content[middle : middle + 4000] = b"\x00" * 4000
    upload.write_bytes(bytes(content))
    assert refused(ingest_file, upload) == (
        "Dataset 'X' in the HDF5 file cannot be read: it is corrupt, or compressed with a filter "
        "this service does not have."
    )
