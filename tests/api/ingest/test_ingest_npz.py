"""NPZ-only concerns: zip entries checked before numpy.load, pickles never loaded, lying headers, bombs."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.ingest import IngestLimits, InvalidInput

UNREADABLE = "The file starts like an NPZ (zip) archive but is not a readable one: it is truncated or corrupt."


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    return tmp_path / "arrays.npz"


def npy(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, values, allow_pickle=True)
    return buffer.getvalue()


def refused(ingest_file: Any, path: Path, limits: IngestLimits | None = None) -> str:
    with pytest.raises(InvalidInput) as caught:
        if limits is None:
            ingest_file(path, "arrays.npz")
        else:
            ingest_file(path, "arrays.npz", limits)
    return caught.value.detail


def test_compressed_npz_is_read(ingest_file: Any, upload: Path) -> None:
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    np.savez_compressed(upload, X=x, y=np.arange(50) % 3)
    result = ingest_file(upload, "arrays.npz")
    with np.load(result.canonical) as stored:
        np.testing.assert_array_equal(stored["X"], x)
        # The canonical file is written uncompressed.
    with zipfile.ZipFile(result.canonical) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


@pytest.mark.parametrize("key", ["X", "y"])
def test_object_arrays_are_never_loaded(ingest_file: Any, upload: Path, key: str) -> None:
    named = {"X": np.zeros((2, 2)), "y": np.zeros(2)}
    named[key] = np.array([{"a": 1}, None], dtype=object) if key == "y" else np.empty((2, 2), dtype=object)
    np.savez(upload, **named)
    assert refused(ingest_file, upload) == (
        f"Array '{key}' in the NPZ file holds Python objects (dtype object), which are never loaded; "
        "save it as numbers (or, for y, as a NumPy string array)."
    )


def test_decompression_bomb(ingest_file: Any, upload: Path) -> None:
    np.savez_compressed(upload, X=np.zeros((2000, 100)), y=np.zeros(2000))
    assert upload.stat().st_size < 10_000
    limits = IngestLimits(max_columns=1000, max_decompressed_bytes=1_000_000)
    message = refused(ingest_file, upload, limits)
    assert message == (
        "The NPZ file decompresses to 1,616,256 bytes (1.5 MiB); the limit is 1,000,000 bytes (976.6 KiB)."
    )


def test_a_header_that_declares_more_than_its_entry_holds(ingest_file: Any, upload: Path) -> None:
    # numpy.load would allocate the declared 800 GB before noticing the data is missing.
    header = npy(np.zeros((10, 3))).replace(b"(10, 3)", b"(99999999999, 1)")
    with zipfile.ZipFile(upload, "w") as archive:
        archive.writestr("X.npy", header)
        archive.writestr("y.npy", npy(np.zeros(10)))
    assert refused(ingest_file, upload) == (
        "Array 'X' in the NPZ file declares shape (99999999999, 1) (float64), more data than its entry holds: "
        "the file is truncated or corrupt."
    )


def test_an_entry_that_is_not_an_array(ingest_file: Any, upload: Path) -> None:
    with zipfile.ZipFile(upload, "w") as archive:
        archive.writestr("X.npy", b"definitely not numpy")
        archive.writestr("y.npy", npy(np.zeros(3)))
    assert refused(ingest_file, upload) == "The entry 'X.npy' in the NPZ file is not a NumPy array (.npy)."


def test_the_exact_entry_name_wins_as_in_numpy_load(ingest_file: Any, upload: Path) -> None:
    with zipfile.ZipFile(upload, "w") as archive:
        archive.writestr("X", npy(np.ones((3, 2))))
        archive.writestr("X.npy", npy(np.zeros((3, 5))))
        archive.writestr("y.npy", npy(np.zeros(3)))
    result = ingest_file(upload, "arrays.npz")
    assert result.columns[0].shape == [2]


@pytest.mark.parametrize("cut", [30, 200, -10])
def test_truncated_or_corrupt_zip(ingest_file: Any, upload: Path, cut: int) -> None:
    np.savez(upload, X=np.random.default_rng(0).normal(size=(40, 4)), y=np.zeros(40))
    upload.write_bytes(upload.read_bytes()[:cut])
    assert refused(ingest_file, upload) == UNREADABLE


def test_damaged_compressed_data(ingest_file: Any, upload: Path) -> None:
    np.savez_compressed(upload, X=np.random.default_rng(0).normal(size=(400, 4)), y=np.zeros(400))
    content = bytearray(upload.read_bytes())
    content[300:2000] = b"\x00" * 1700
    upload.write_bytes(bytes(content))
    assert refused(ingest_file, upload) == UNREADABLE


def test_encrypted_entries(ingest_file: Any, upload: Path) -> None:
    np.savez(upload, X=np.zeros((3, 2)), y=np.zeros(3))
    content = bytearray(upload.read_bytes())
    # Set the "encrypted" flag on every local and central header.
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (found := content.find(signature, start)) >= 0:
            content[found + flag_offset] |= 0x01
            start = found + 4
    upload.write_bytes(bytes(content))
    assert refused(ingest_file, upload) == UNREADABLE


def test_text_with_code_points_that_are_not_unicode(ingest_file: Any, upload: Path) -> None:
    y = np.array(["cat", "dog", "eel"])
    codes = y.view(np.uint32).copy()
    codes[1 * 3] = 0xD800  # a lone surrogate as the first character of y[1]
    np.savez(upload, X=np.zeros((3, 1)), y=codes.view(y.dtype))
    assert refused(ingest_file, upload) == "y in the NPZ file holds characters that are not valid Unicode at index 1."
