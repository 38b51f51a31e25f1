"""Damaged files of every format end in InvalidInput (or, where the damage is harmless, a dataset): never
another exception, and never a crash of the process."""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from api.ingest import InvalidInput


def sample_files(tmp_path: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    files = {"csv": b'a,b,c,d\n1,"x,y",true,2.5\n2,"q\nr",false,\n3,z,,NaN\n' * 20}
    buffer = io.BytesIO()
    pq.write_table(pa.table({"a": np.arange(300), "s": [str(i % 7) for i in range(300)], "f": rng.random(300)}), buffer)
    files["parquet"] = buffer.getvalue()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, X=rng.normal(size=(50, 3)), y=np.array(list("ab") * 25))
    files["npz"] = buffer.getvalue()
    path = tmp_path / "sample.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("X", data=rng.normal(size=(50, 3)), chunks=(10, 3), compression="gzip")
        handle["y"] = np.array([b"a", b"b"] * 25)
    files["hdf5"] = path.read_bytes()
    return files


def outcome(ingest_bytes: Any, content: bytes) -> str:
    try:
        ingest_bytes(content)
    except InvalidInput:
        return "refused"
    return "read"


def test_every_byte_of_a_parquet_footer(ingest_bytes: Any) -> None:
    # Corrupt size statistics in a footer once made pyarrow abort the process from a metadata accessor.
    buffer = io.BytesIO()
    pq.write_table(pa.table({"a": np.arange(300), "s": [str(i % 7) for i in range(300)]}), buffer)
    good = buffer.getvalue()
    footer = struct.unpack("<I", good[-8:-4])[0]
    seen = set()
    for position in range(len(good) - 8 - footer, len(good) - 8):
        for value in (0x51, 0xFF):
            damaged = bytearray(good)
            damaged[position] = value
            seen.add(outcome(ingest_bytes, bytes(damaged)))
    assert "refused" in seen


@pytest.mark.parametrize("fmt", ["csv", "parquet", "npz", "hdf5"])
def test_random_damage(ingest_bytes: Any, tmp_path: Path, fmt: str) -> None:
    good = sample_files(tmp_path)[fmt]
    rnd = random.Random(fmt)
    for _ in range(60):
        damaged = bytearray(good)
        for _ in range(rnd.randint(1, 4)):
            position = rnd.randrange(len(damaged))
            choice = rnd.random()
            if choice < 0.6:
                damaged[position] = rnd.randrange(256)
            elif choice < 0.8:
                del damaged[position : position + rnd.randint(1, 50)]
            else:
                damaged[position:position] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 20)))
        outcome(ingest_bytes, bytes(damaged))
