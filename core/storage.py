"""Where datasets live in the shared store: one folder per parse of the uploaded bytes (their sha256, and
for tables the missing-value markers they were read with), holding the canonical form (data.parquet for
tables, data.npz for arrays) that workers read."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from core.settings import Settings

CANONICAL_FILE = {"table": "data.parquet", "arrays": "data.npz"}


def dataset_dir(settings: Settings, sha256: str) -> Path:
    return settings.datasets_dir / sha256


def canonical_path(settings: Settings, sha256: str, kind: str) -> Path:
    return dataset_dir(settings, sha256) / CANONICAL_FILE[kind]


def store_key(sha256: str, na_values: Sequence[str] | None) -> str:
    """The store folder of one parse: the same bytes read with other missing-value markers are another
    table. None (arrays, and tables stored before the markers were recorded) is the bare sha256."""
    if na_values is None:
        return sha256
    markers = hashlib.sha256(json.dumps(list(na_values)).encode()).hexdigest()[:16]
    return f"{sha256}-na-{markers}"
