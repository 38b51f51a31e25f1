"""Loading a job's dataset as arrays, from the canonical form in the shared store. Each process keeps
the last few it loaded, keyed by the stored parse (sha256 and missing-value markers), target and feature
columns, so that ten jobs on one dataset read and encode it once. A table job reads only its target and
the feature columns its spec lists (the API resolved them at submit)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.builtins import BUILTIN_PREFIX, BUILTINS
from core.db import session_scope
from core.features import FeatureColumn, encode, feature_names
from core.settings import get_settings
from core.storage import canonical_path, store_key
from models import Dataset
from worker.training import ArrayDataset


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
def _load_table(key: str, target: str, features: tuple[str, ...] | None) -> LoadedData:
    """`features` None (jobs submitted before specs listed them): every column but the target."""
    path = canonical_path(get_settings(), key, "table")
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
def _load_arrays(sha256: str) -> LoadedData:
    with np.load(canonical_path(get_settings(), sha256, "arrays"), allow_pickle=False) as stored:
        X, y = stored["X"], stored["y"]
    image_shape = tuple(X.shape[1:]) if X.ndim == 4 else None
    names = tuple(f"x{i}" for i in range(int(np.prod(X.shape[1:]))))
    return LoadedData(ArrayDataset(X=X, y=y, feature_names=names, image_shape=image_shape))


def _table_key(dataset_id: str, sha256: str) -> str:
    """The store folder of a table: its bytes' sha256 and the markers its upload was read with."""
    with session_scope() as session:
        row = session.get(Dataset, dataset_id)
        na_values = row.generator.get("na_values") if row is not None and row.generator else None
        if row is None or row.source != "upload" or na_values is None:
            return sha256
        return store_key(sha256, na_values)


def load_dataset(dataset_id: str, sha256: str, target: str, features: list[str] | None = None) -> LoadedData:
    if dataset_id.startswith(BUILTIN_PREFIX):
        name = dataset_id.removeprefix(BUILTIN_PREFIX)
        if name not in BUILTINS:
            raise DatasetUnavailable(f"unknown built-in dataset {dataset_id!r}")
        if BUILTINS[name].sha256 != sha256:
            raise DatasetUnavailable(f"{dataset_id} on this worker differs from the one the job was submitted with")
        return _load_builtin(name)
    settings = get_settings()
    key = _table_key(dataset_id, sha256)
    if canonical_path(settings, key, "table").exists():
        return _load_table(key, target, tuple(features) if features is not None else None)
    if canonical_path(settings, sha256, "arrays").exists():
        return _load_arrays(sha256)
    raise DatasetUnavailable(f"dataset {dataset_id} ({sha256[:12]}) is not in the store {settings.datasets_dir}")
