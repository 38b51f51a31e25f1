"""Loading a job's dataset as arrays, once per process per dataset content (keyed by sha256)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from core.builtins import BUILTIN_PREFIX, BUILTINS
from worker.training import ArrayDataset


class DatasetUnavailable(Exception):
    pass


@lru_cache(maxsize=8)
def _load_builtin(name: str, sha256: str) -> ArrayDataset:
    from sklearn import datasets

    loaders = {
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
        "diabetes": lambda: datasets.load_diabetes(scaled=False),
    }
    bunch = loaders[name]()
    X = np.asarray(bunch.data, dtype=np.float64)
    return ArrayDataset(
        X=X,
        y=np.asarray(bunch.target),
        feature_names=tuple(str(f) for f in bunch.feature_names),
        image_shape=BUILTINS[name].image_shape,
    )


def load_dataset(dataset_id: str, sha256: str) -> ArrayDataset:
    if dataset_id.startswith(BUILTIN_PREFIX):
        name = dataset_id.removeprefix(BUILTIN_PREFIX)
        if name not in BUILTINS:
            raise DatasetUnavailable(f"unknown built-in dataset {dataset_id!r}")
        if BUILTINS[name].sha256 != sha256:
            raise DatasetUnavailable(
                f"{dataset_id} on this worker has different content than when the job was submitted"
            )
        return _load_builtin(name, sha256)
    raise DatasetUnavailable(f"dataset {dataset_id!r} is not available to this worker")
