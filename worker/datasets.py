"""Loading a job's dataset as arrays, from the canonical form in the store (core/storage.py).

A worker keeps a copy of each dataset it trains on under its own home, cache/datasets/<parse>/,
fetched from the store once (to a temporary file, then renamed: jobs running side by side on one
worker never see part of it), so that it never needs the API's disk. The cache is bounded
(REGTRAIN_DATASET_CACHE_BYTES): the least recently used copies make room for a new one. With the local store on this
host the store's own file is read in place, not copied.

Each process also keeps the last few datasets it loaded, keyed by the stored parse (sha256 and
missing-value markers), target and feature columns, so that ten jobs on one dataset read and encode it
once. A table job reads only its target and the feature columns its spec lists (the API resolved them
at submit)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.builtins import BUILTIN_PREFIX, BUILTINS
from core.db import session_scope
from core.errors import ObjectMissing
from core.features import FeatureColumn, encode, feature_names
from core.settings import get_settings
from core.storage import TEMPORARY_PREFIX, dataset_object_key, get_store, store_key
from models import Dataset
from worker.storage import retrying_store
from worker.training import ArrayDataset

log = logging.getLogger(__name__)


class DatasetUnavailable(Exception):
    pass


@dataclass(frozen=True)
class LoadedData:
    arrays: ArrayDataset
    # How named columns became features (tables); None for arrays and built-ins.
    layout: tuple[FeatureColumn, ...] | None = None


@lru_cache(maxsize=8)
def _load_builtin(name: str) -> LoadedData:
    from sklearn import datasets

    loaders = {
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
        "diabetes": lambda: datasets.load_diabetes(scaled=False),
    }
    bunch = loaders[name]()
    return LoadedData(
        ArrayDataset(
            X=np.asarray(bunch.data, dtype=np.float64),
            y=np.asarray(bunch.target),
            feature_names=tuple(str(f) for f in bunch.feature_names),
            image_shape=BUILTINS[name].image_shape,
        )
    )


def _labels(column: pa.ChunkedArray) -> np.ndarray:
    """Target values as numbers or strings; with nulls, an object array holding None for them (so
    that integer labels stay integers)."""
    if column.null_count:
        return np.array(column.to_pylist(), dtype=object)
    return column.to_numpy()


@lru_cache(maxsize=8)
def _load_table(path: Path, target: str, features: tuple[str, ...] | None) -> LoadedData:
    """`features` None (jobs submitted before specs listed them): every column but the target."""
    names = pq.read_schema(path).names
    chosen = [name for name in names if name != target] if features is None else list(features)
    absent = [name for name in [*chosen, target] if name not in names]
    if absent:
        raise DatasetUnavailable(f"the stored dataset has no column(s) {', '.join(map(repr, absent))}")
    table = pq.read_table(path, columns=[*chosen, target])
    layout = []
    for name in chosen:
        field = table.schema.field(name)
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            categories = pc.unique(table[field.name]).drop_null().to_pylist()
            layout.append(FeatureColumn(field.name, "categorical", tuple(sorted(categories))))
        else:
            layout.append(FeatureColumn(field.name, "numeric"))
    X = encode(layout, {column.name: table[column.name] for column in layout})
    y = _labels(table[target])
    return LoadedData(ArrayDataset(X=X, y=y, feature_names=tuple(feature_names(layout))), tuple(layout))


@lru_cache(maxsize=8)
def _load_arrays(path: Path) -> LoadedData:
    with np.load(path, allow_pickle=False) as stored:
        X, y = stored["X"], stored["y"]
    image_shape = tuple(X.shape[1:]) if X.ndim == 4 else None
    names = tuple(f"x{i}" for i in range(int(np.prod(X.shape[1:]))))
    return LoadedData(ArrayDataset(X=X, y=y, feature_names=names, image_shape=image_shape))


def _stored_parses(dataset_id: str, sha256: str) -> list[tuple[str, str]]:
    """Where the dataset may be in the store, as (parse folder, kind): its row says which; without a row
    (it was deleted meanwhile), a table or arrays under the bare sha256."""
    with session_scope() as session:
        row = session.get(Dataset, dataset_id)
        if row is None:
            return [(sha256, "table"), (sha256, "arrays")]
        na_values = row.generator.get("na_values") if row.source == "upload" and row.generator else None
        return [(store_key(sha256, na_values) if row.kind == "table" else sha256, row.kind)]


def dataset_file(key: str) -> Path:
    """A local file with the object's bytes: the store's own file when the store is a folder on this host,
    else this worker's cached copy, fetched once. Raises ObjectMissing when the store does not have it,
    StoreUnavailable when the store stayed unreachable (worker.storage.retrying_store)."""
    settings = get_settings()
    store = get_store(settings)
    in_place = store.local_path(key)
    if in_place is not None:
        if not in_place.is_file():
            raise ObjectMissing(f"{key} is not in the store.")
        return in_place
    cache = settings.home / "cache"
    cached = cache / key
    if cached.is_file():
        os.utime(cached)  # its last use, which eviction goes by
        return cached
    retrying_store(lambda: store.get_to_file(key, cached), f"fetching {key}")
    evict_least_recently_used(cache, settings.dataset_cache_bytes, keep=cached)
    return cached


# A cached file used this recently is never evicted: a job on this worker may be about to open it.
IN_USE_SECONDS = 60.0


def evict_least_recently_used(cache: Path, limit_bytes: int, keep: Path) -> list[Path]:
    """Removes cached datasets, least recently used first, until the cache holds at most `limit_bytes`;
    never `keep` nor a file used in the last IN_USE_SECONDS. A job that has read a file keeps its arrays
    in memory, so removing the file costs only a fetch the next time. Returns what was removed."""
    now = time.time()
    files = []
    for path in cache.rglob("*"):
        if path.is_file() and not path.name.startswith(TEMPORARY_PREFIX):
            stat = path.stat()
            files.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in files)
    removed = []
    for used_at, size, path in sorted(files):
        if total <= limit_bytes:
            break
        if path == keep or now - used_at < IN_USE_SECONDS:
            continue
        path.unlink(missing_ok=True)
        total -= size
        removed.append(path)
        log.info("dataset cache over %d bytes: removed %s", limit_bytes, path.relative_to(cache))
    return removed


def load_dataset(dataset_id: str, sha256: str, target: str, features: list[str] | None = None) -> LoadedData:
    if dataset_id.startswith(BUILTIN_PREFIX):
        name = dataset_id.removeprefix(BUILTIN_PREFIX)
        if name not in BUILTINS:
            raise DatasetUnavailable(f"unknown built-in dataset {dataset_id!r}")
        if BUILTINS[name].sha256 != sha256:
            raise DatasetUnavailable(f"{dataset_id} on this worker differs from the one the job was submitted with")
        return _load_builtin(name)
    for parse, kind in _stored_parses(dataset_id, sha256):
        try:
            path = dataset_file(dataset_object_key(parse, kind))
        except ObjectMissing:
            continue
        if kind == "table":
            return _load_table(path, target, tuple(features) if features is not None else None)
        return _load_arrays(path)
    raise ObjectMissing(f"Dataset {dataset_id} ({sha256[:12]}) is missing from the store.")
