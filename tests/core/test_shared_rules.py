"""Rules that the API applies at submit and the worker applies when training: where they are written
twice, these tests hold the copies equal over a range of inputs (as tests/core/test_architecture.py
does for the exclusion patterns)."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch

from api.services.training_data import TrainingView, check_splits
from core.architecture import output_units
from core.errors import InvalidInput
from worker.training.config import TrainingConfig
from worker.training.data import ArrayDataset, prepare, split_indices


def labels(class_counts: list[int]) -> np.ndarray:
    return np.concatenate([np.full(count, label) for label, count in enumerate(class_counts)])


@pytest.mark.parametrize("n_classes", [2, 3, 4, 7, 10, 26])
def test_output_units_equal_the_outputs_the_engine_builds_for_classification(n_classes: int) -> None:
    y = labels([3] * n_classes)
    data = ArrayDataset(X=np.arange(len(y) * 2, dtype=np.float64).reshape(-1, 2), y=y, feature_names=("a", "b"))
    training = TrainingConfig(validation_fraction=0.0)
    prepared = prepare(data, "classification", training, torch.device("cpu"), torch.float64)
    assert output_units("classification", n_classes) == prepared.n_outputs


def test_output_units_equal_the_outputs_the_engine_builds_for_regression() -> None:
    y = np.linspace(0.0, 1.0, 20)
    data = ArrayDataset(X=y.reshape(-1, 1), y=y, feature_names=("a",))
    prepared = prepare(data, "regression", TrainingConfig(validation_fraction=0.0), torch.device("cpu"), torch.float64)
    assert output_units("regression", None) == prepared.n_outputs == 1


def view(task: str, class_counts: list[int] | None) -> TrainingView:
    return TrainingView(
        target="target",
        task=task,
        task_reason="given",
        n_features=1,
        n_classes=len(class_counts) if class_counts else None,
        image_shape=None,
        class_counts=[(f"c{label}", count) for label, count in enumerate(class_counts)] if class_counts else None,
        incomplete={},
    )


FRACTIONS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.33, 0.45, 0.5, 0.7]
SPLIT_CASES = [
    *(("regression", [rows]) for rows in [2, 3, 4, 5, 7, 10, 11, 19, 20, 33, 101]),
    *(
        ("classification", counts)
        for counts in ([1, 1], [1, 5], [2, 2], [3, 2], [5, 5, 1], [4, 9, 13], [10, 10, 10], [50, 3], [7, 8, 9, 10])
    ),
]


@pytest.mark.parametrize(("task", "counts"), SPLIT_CASES, ids=[f"{t}-{c}" for t, c in SPLIT_CASES])
def test_the_submit_check_of_the_splits_agrees_with_the_workers_split(task: str, counts: list[int]) -> None:
    """A job is accepted exactly when the worker's split gives it at least 2 training rows, rows in
    every split it asks for, and (classification) a training row of every class; a refusal quotes the
    worker's own split sizes."""
    y = labels(counts)
    rows = len(y)
    for validation_fraction, test_fraction in itertools.product(FRACTIONS, FRACTIONS):
        if validation_fraction + test_fraction >= 0.9:
            continue  # refused by the request schema before any of this
        train, validation, test = split_indices(y, task, validation_fraction, test_fraction, seed=0)  # type: ignore[arg-type]
        assert len(train) + len(validation) + len(test) == rows
        workable = (
            len(train) >= 2
            and (validation_fraction == 0 or len(validation) > 0)
            and (test_fraction == 0 or len(test) > 0)
            and (task == "regression" or len(set(y[train].tolist())) == len(counts))
        )
        case = f"{counts} rows, validation {validation_fraction}, test {test_fraction}"
        try:
            check_splits(
                view(task, counts if task == "classification" else None), rows, validation_fraction, test_fraction
            )
        except InvalidInput as refused:
            assert not workable, f"the API refuses a split the worker can train: {case}: {refused.detail}"
            sizes = re.search(r"gives (\d+) rows, test_fraction \S+ gives (\d+), leaving (-?\d+)", refused.detail)
            if sizes is not None:
                assert tuple(map(int, sizes.groups())) == (len(validation), len(test), len(train)), case
        else:
            assert workable, f"the API accepts a split the worker cannot train: {case}"
