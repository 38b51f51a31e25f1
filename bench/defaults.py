"""Do the defaults train a good model? A job given only a dataset (and a model type) against
scikit-learn's defaults on the same training/validation split.

For each dataset (the five built-ins and the two realistic tables in bench/data/, written by
bench/realistic_data.py) and each model type:

  regtrain  the engine, in-process, with the API's normalized defaults: the spec is
            JobCreate(dataset=..., model={"type": ...}).model_dump(), as POST /v1/jobs stores it
  sklearn   StandardScaler, then LogisticRegression() / Ridge() for `linear`, MLPClassifier() /
            MLPRegressor() for `mlp`, every argument at its default (random_state=0 for the MLPs)

Both see the same rows: the engine's own split (worker/training/data.py, split_indices) with the
default validation_fraction and seed. The score is validation accuracy (classification) or R2
(regression); the target is regtrain >= sklearn - 0.02.

    python -m bench.defaults [--datasets iris,wine] [--models linear,mlp] [--set training.epochs=50]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import torch

from api.schemas.job import JobCreate
from core.builtins import BUILTINS
from core.features import FeatureColumn, encode, feature_names
from worker.training import ArrayDataset, NullReporter, TrainConfig, train
from worker.training.config import Task
from worker.training.data import encode_labels, split_indices

# Within this much of scikit-learn's validation accuracy (or R2) counts as a good default.
TOLERANCE = 0.02
DATA_DIR = Path(__file__).parent / "data"
# The realistic tables: file, target column, task.
TABLES: dict[str, tuple[str, str, Task]] = {
    "churn": ("churn.csv", "churned", "classification"),
    "houses": ("houses.csv", "price_k", "regression"),
}
DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes", *TABLES)
MODELS = ("linear", "mlp")


@dataclass(frozen=True)
class Case:
    dataset: str
    task: Task
    data: ArrayDataset


def load_case(name: str) -> Case:
    """The arrays the worker would train on: scikit-learn's loaders for built-ins (as worker/datasets.py),
    and for a table numbers as they are and string columns one-hot in sorted category order
    (core/features.py), as an uploaded CSV is encoded."""
    if name in TABLES:
        file, target, task = TABLES[name]
        table = pa_csv.read_csv(DATA_DIR / file)
        layout = []
        for field in table.schema:
            if field.name == target:
                continue
            if pa.types.is_string(field.type):
                categories = pc.unique(table[field.name]).drop_null().to_pylist()
                layout.append(FeatureColumn(field.name, "categorical", tuple(sorted(categories))))
            else:
                layout.append(FeatureColumn(field.name, "numeric"))
        X = encode(layout, {column.name: table[column.name] for column in layout})
        y = table[target].to_numpy()
        return Case(name, task, ArrayDataset(X=X, y=y, feature_names=tuple(feature_names(layout))))
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
    names = tuple(str(f) for f in bunch.feature_names)
    task = "classification" if BUILTINS[name].task == "classification" else "regression"
    return Case(name, task, ArrayDataset(X=X, y=np.asarray(bunch.target), feature_names=names))


def default_spec(case: Case, model_type: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The normalized spec the API stores for {"dataset": ..., "model": {"type": ...}}, plus overrides
    ("section.key" -> value) for trying other defaults."""
    spec = JobCreate.model_validate({"dataset": f"builtin:{case.dataset}", "model": {"type": model_type}}).model_dump(
        mode="json"
    )
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        spec[section][key] = value
    return spec


def regtrain_score(case: Case, spec: dict[str, Any]) -> tuple[float, int]:
    config = TrainConfig.from_spec(spec, case.task)
    result = train(config, case.data, NullReporter()).result
    assert result.validation is not None
    score = result.validation.accuracy if case.task == "classification" else result.validation.r2
    assert score is not None
    return score, result.epochs_run


def sklearn_score(case: Case, model_type: str, spec: dict[str, Any]) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    training = spec["training"]
    y = encode_labels(case.data.y)[0] if case.task == "classification" else case.data.y.astype(np.float64)
    train_rows, val_rows, _ = split_indices(
        y, case.task, training["validation_fraction"], training["test_fraction"], training["seed"]
    )
    X = case.data.X.reshape(len(y), -1)
    classification = case.task == "classification"
    estimator: Any
    if model_type == "linear":
        estimator = LogisticRegression() if classification else Ridge()
    else:
        estimator = MLPClassifier(random_state=0) if classification else MLPRegressor(random_state=0)
    model = make_pipeline(StandardScaler(), estimator)
    with warnings.catch_warnings():
        # The defaults' max_iter often stops before convergence; that is what a default user gets.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[train_rows], y[train_rows])
    return float(model.score(X[val_rows], y[val_rows]))


def compare(name: str, model_type: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    case = load_case(name)
    spec = default_spec(case, model_type, overrides or {})
    started = time.perf_counter()
    ours, epochs_run = regtrain_score(case, spec)
    seconds = time.perf_counter() - started
    theirs = sklearn_score(case, model_type, spec)
    return {
        "dataset": name,
        "model": model_type,
        "metric": "accuracy" if case.task == "classification" else "r2",
        "regtrain": ours,
        "sklearn": theirs,
        "difference": ours - theirs,
        "meets_target": ours >= theirs - TOLERANCE,
        "epochs_run": epochs_run,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--set", action="append", default=[], help="section.key=JSON value, e.g. optimizer.lr=0.01")
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    # Tiny networks: a second intra-op thread only adds synchronization (and on a shared host, waiting).
    torch.set_num_threads(1)
    header = f"{'dataset':<14} {'model':<7} {'metric':<9} {'regtrain':>9} {'sklearn':>9} {'diff':>8}"
    header += "  target  epochs  seconds"
    print(header)
    print("-" * len(header))
    for name in args.datasets.split(","):
        for model_type in args.models.split(","):
            row = compare(name, model_type, overrides)
            print(
                f"{row['dataset']:<14} {row['model']:<7} {row['metric']:<9} {row['regtrain']:>9.4f} "
                f"{row['sklearn']:>9.4f} {row['difference']:>+8.4f}  {'met' if row['meets_target'] else 'MISSED':<6}  "
                f"{row['epochs_run']:>6}  {row['seconds']:>7.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
