"""Where datasets live in the shared store: one folder per sha256 of the uploaded bytes, holding the
canonical form (data.parquet for tables, data.npz for arrays) that workers read."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings

CANONICAL_FILE = {"table": "data.parquet", "arrays": "data.npz"}


def dataset_dir(settings: Settings, sha256: str) -> Path:
    return settings.datasets_dir / sha256


def canonical_path(settings: Settings, sha256: str, kind: str) -> Path:
    return dataset_dir(settings, sha256) / CANONICAL_FILE[kind]
