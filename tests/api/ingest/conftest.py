"""Fixtures for the ingest library: real files in tmp_path, ingested into a fresh output folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from ingest_oracle import LIMITS

from api.ingest import Ingested, IngestLimits, ingest

Ingest = Callable[..., Ingested]


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def ingest_bytes(tmp_path: Path, out_dir: Path) -> Ingest:
    """ingest_bytes(content, filename=None, limits=LIMITS): writes the upload and ingests it."""

    def run(content: bytes, filename: str | None = None, limits: IngestLimits = LIMITS) -> Ingested:
        upload = tmp_path / "upload.bin"
        upload.write_bytes(content)
        return ingest(upload, filename, out_dir, limits)

    return run


@pytest.fixture
def ingest_file(out_dir: Path) -> Ingest:
    """ingest_file(path, filename=None, limits=LIMITS): ingests a file already written."""

    def run(upload: Path, filename: str | None = None, limits: IngestLimits = LIMITS) -> Ingested:
        return ingest(upload, filename, out_dir, limits)

    return run
