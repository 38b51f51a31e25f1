"""The format comes from the bytes; the client's file name is only checked against them, never used as a path."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from api.ingest import InvalidInput
from api.ingest.detect import detect_format


def parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"a": [1, 2]}), buffer)
    return buffer.getvalue()


def npz_bytes() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, X=np.zeros((2, 1)), y=np.zeros(2))
    return buffer.getvalue()


def hdf5_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "made.h5"
    with h5py.File(path, "w") as handle:
        handle["X"] = np.zeros((2, 1))
        handle["y"] = np.zeros(2)
    return path.read_bytes()


@pytest.fixture
def samples(tmp_path: Path) -> dict[str, bytes]:
    return {"csv": b"a,b\n1,2\n", "parquet": parquet_bytes(), "npz": npz_bytes(), "hdf5": hdf5_bytes(tmp_path)}


@pytest.mark.parametrize("fmt", ["csv", "parquet", "npz", "hdf5"])
@pytest.mark.parametrize("filename", [None, "upload.bin", "data.csv", "no_extension"])
def test_the_bytes_decide(tmp_path: Path, samples: dict[str, bytes], fmt: str, filename: str | None) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(samples[fmt])
    assert detect_format(upload, filename) == fmt


CLAIMS = [
    ("x.parquet", "parquet", "Parquet", "a Parquet file"),
    ("X.PQ", "parquet", "Parquet", "a Parquet file"),
    ("cells.h5", "hdf5", "HDF5", "an HDF5 file"),
    ("cells.hdf5", "hdf5", "HDF5", "an HDF5 file"),
    ("arrays.npz", "npz", "NPZ", "an NPZ file"),
]


@pytest.mark.parametrize(
    ("filename", "label", "article", "actual"),
    [
        (filename, label, article, actual)
        for filename, claimed, label, article in CLAIMS
        for actual in ("csv", "parquet", "npz", "hdf5")
        if actual != claimed
    ],
)
def test_a_name_that_claims_another_format(
    ingest_bytes: Any, samples: dict[str, bytes], filename: str, label: str, article: str, actual: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        ingest_bytes(samples[actual], filename)
    assert caught.value.detail == f"'{filename}' is named as {label} but its content is not {article}."


def test_empty_file_whatever_its_name(ingest_bytes: Any) -> None:
    for name in (None, "x.parquet", "x.npz", "x.csv"):
        with pytest.raises(InvalidInput, match=r"^The file is empty\.$"):
            ingest_bytes(b"", name)


def test_truncated_parquet(ingest_bytes: Any) -> None:
    content = parquet_bytes()[:-10]
    with pytest.raises(InvalidInput) as caught:
        ingest_bytes(content, "cut.parquet")
    assert caught.value.detail == (
        "'cut.parquet' starts like a Parquet file but does not end like one: it is truncated or corrupt."
    )


def test_the_file_name_is_never_a_path(ingest_bytes: Any, out_dir: Path, tmp_path: Path) -> None:
    result = ingest_bytes(b"a\n1\n", "../../escape.csv")
    assert result.canonical == out_dir / "data.parquet"
    assert sorted(p.name for p in out_dir.iterdir()) == ["data.parquet"]
    assert not (tmp_path.parent / "escape.csv").exists()


def test_names_in_messages_are_masked_and_bounded(ingest_bytes: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        ingest_bytes(b"a\n1\n", "evil\nname" + "x" * 200 + ".npz")
    detail = caught.value.detail
    assert "\n" not in detail
    assert detail.startswith("'evil?namexxx") and "...' is named as NPZ" in detail
