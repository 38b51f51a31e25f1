"""Folds equal scikit-learn's KFold and StratifiedKFold without shuffling, and refuse what cannot work."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import KFold, StratifiedKFold

from worker.training.folds import kfold, stratified_kfold


def assert_same_folds(ours: list[tuple[np.ndarray, np.ndarray]], theirs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    assert len(ours) == len(theirs)
    for (train, test), (sk_train, sk_test) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(train, sk_train)
        np.testing.assert_array_equal(test, sk_test)


# Every (rows, folds) pair with at least one row per fold; more folds than rows is refused (tested below).
SIZES = [(n, folds) for n in (2, 3, 7, 10, 11, 50, 101) for folds in (2, 3, 5, 7) if folds <= n]


@pytest.mark.parametrize(("n", "folds"), SIZES)
def test_kfold_equals_sklearn(n: int, folds: int) -> None:
    assert_same_folds(kfold(n, folds), list(KFold(folds).split(np.zeros(n))))


def test_stratified_kfold_equals_sklearn_on_many_label_distributions() -> None:
    rng = np.random.default_rng(0)
    checked = 0
    for trial in range(200):
        n_classes = int(rng.integers(2, 6))
        folds = int(rng.integers(2, 7))
        # Unbalanced classes, labels of mixed kinds (ints, strings), rows in random and sorted order.
        counts = rng.integers(folds, folds + 25, size=n_classes)
        names = rng.permutation(np.arange(10, 10 + n_classes)) if trial % 2 else np.array(list("zyxwv"))[:n_classes]
        labels = np.repeat(names, counts)
        if trial % 3:
            labels = rng.permutation(labels)
        ours = stratified_kfold(labels, folds)
        theirs = list(StratifiedKFold(folds).split(np.zeros(labels.size), labels))
        assert_same_folds(ours, theirs)
        checked += 1
    assert checked == 200


def test_test_sets_partition_the_rows_with_shuffling_and_are_seeded() -> None:
    labels = np.repeat([0, 1, 2], [10, 20, 13])
    for split in (lambda seed: kfold(43, 5, True, seed), lambda seed: stratified_kfold(labels, 5, True, seed)):
        first, again, other = split(1), split(1), split(2)
        assert_same_folds(first, again)
        assert any(not np.array_equal(a[1], b[1]) for a, b in zip(first, other, strict=True))
        tests = np.sort(np.concatenate([test for _, test in first]))
        np.testing.assert_array_equal(tests, np.arange(43))
        for train, test in first:
            assert np.intersect1d(train, test).size == 0 and train.size + test.size == 43


def test_shuffled_stratified_folds_keep_class_shares() -> None:
    labels = np.repeat(["a", "b"], [50, 25])
    for _, test in stratified_kfold(labels, 5, shuffle=True, seed=3):
        assert (labels[test] == "a").sum() == 10 and (labels[test] == "b").sum() == 5


def test_refuses_too_few_rows_or_folds() -> None:
    with pytest.raises(ValueError, match="at least 2 folds"):
        kfold(10, 1)
    with pytest.raises(ValueError, match="Cannot split 4 rows into 5 folds"):
        kfold(4, 5)
    with pytest.raises(ValueError, match=r"Class 'rare' has only 3 rows, fewer than the 5 folds"):
        stratified_kfold(np.array(["common"] * 20 + ["rare"] * 3), 5)
