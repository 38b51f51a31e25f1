"""The built-in datasets: scikit-learn's bundled data files, used without any download.

The API describes and fingerprints them from the files alone (it never imports scikit-learn, which
would slow its start); the worker loads them with scikit-learn's loaders."""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    task: str
    rows: int
    features: int
    classes: int | None
    files: tuple[str, ...]
    image_shape: tuple[int, int, int] | None = None
    description: str = ""
    # Rows of the least frequent class (counted from the bundled files): bounds stratified folds.
    smallest_class: int | None = None

    @property
    def ref(self) -> str:
        return BUILTIN_PREFIX + self.name

    @property
    def sha256(self) -> str:
        return builtin_sha256(self.name)


BUILTINS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in (
        BuiltinDataset(
            "iris",
            "classification",
            150,
            4,
            3,
            ("iris.csv",),
            description="Fisher's iris: 4 flower measurements, 3 species.",
            smallest_class=50,
        ),
        BuiltinDataset(
            "wine",
            "classification",
            178,
            13,
            3,
            ("wine_data.csv",),
            description="Chemical analysis of 3 Italian wine cultivars: 13 features.",
            smallest_class=48,
        ),
        BuiltinDataset(
            "breast_cancer",
            "classification",
            569,
            30,
            2,
            ("breast_cancer.csv",),
            description="Wisconsin diagnostic breast cancer: 30 features, malignant or benign.",
            smallest_class=212,
        ),
        BuiltinDataset(
            "digits",
            "classification",
            1797,
            64,
            10,
            ("digits.csv.gz",),
            image_shape=(1, 8, 8),
            description="Handwritten digits as 8x8 grey images (1x8x8 for a cnn), 10 classes.",
            smallest_class=174,
        ),
        BuiltinDataset(
            "diabetes",
            "regression",
            442,
            10,
            None,
            ("diabetes_data_raw.csv.gz", "diabetes_target.csv.gz"),
            description="Diabetes progression after one year from 10 baseline variables.",
        ),
    )
}


def sklearn_data_dir() -> Path:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-learn is not installed; it provides the built-in datasets")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


@cache
def builtin_sha256(name: str) -> str:
    digest = hashlib.sha256()
    for file_name in BUILTINS[name].files:
        digest.update((sklearn_data_dir() / file_name).read_bytes())
    return digest.hexdigest()
