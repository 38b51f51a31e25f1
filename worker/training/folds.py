"""K-fold splits for studies: the same folds as scikit-learn's KFold and StratifiedKFold.

Without shuffling the folds equal scikit-learn's exactly (same rows, same order), which is what makes a
study's cross-validation comparable to ElasticNetCV, LassoCV and LogisticRegressionCV run on the same
data (their defaults are KFold(5) and StratifiedKFold(5), both unshuffled).

With shuffling the folds are a deterministic function of ``seed`` through ``numpy.random.default_rng``.
They do NOT equal scikit-learn's shuffled folds for the same seed: scikit-learn draws from the legacy
``numpy.random.RandomState``; this engine owns its randomness through Generators (CONVENTIONS 17).

Every function returns a list of ``(train_idx, test_idx)`` pairs of sorted int64 index arrays, the
test sets partitioning ``range(n)``.
"""

from __future__ import annotations

import numpy as np

FoldPairs = list[tuple[np.ndarray, np.ndarray]]


def kfold(n: int, folds: int, shuffle: bool = False, seed: int | None = None) -> FoldPairs:
    """Split ``n`` rows into ``folds`` test blocks, as scikit-learn's ``KFold(folds)``.

    The first ``n % folds`` blocks hold one row more than the others. Without shuffling the blocks
    are contiguous; with shuffling the rows are permuted by ``default_rng(seed)`` first.
    """
    _check_folds(n, folds)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    sizes = np.full(folds, n // folds, dtype=np.int64)
    sizes[: n % folds] += 1
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    test_fold = np.empty(n, dtype=np.int64)
    for fold in range(folds):
        test_fold[order[bounds[fold] : bounds[fold + 1]]] = fold
    return _pairs(test_fold, folds)


def stratified_kfold(labels: np.ndarray, folds: int, shuffle: bool = False, seed: int | None = None) -> FoldPairs:
    """Split rows into ``folds`` test sets that keep each class's share, as ``StratifiedKFold(folds)``.

    scikit-learn's allocation, reproduced step by step: classes are numbered by first appearance, the
    number of rows of each class in each fold comes from dealing the class-sorted rows round robin,
    and each class's rows are assigned to folds in contiguous blocks in their original order (with
    shuffling, the block labels of each class are permuted by ``default_rng(seed)``).

    Raises ValueError when a class has fewer rows than ``folds`` (scikit-learn only warns; a study
    refuses, because some fold would then have no row of that class to validate on).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"Stratified folds need one label per row; got an array of shape {labels.shape}.")
    n = labels.shape[0]
    _check_folds(n, folds)
    _, first_index, inverse = np.unique(labels, return_index=True, return_inverse=True)
    # np.unique numbers classes in sorted order; renumber them by first appearance, as scikit-learn does.
    _, appearance_rank = np.unique(first_index, return_inverse=True)
    encoded = appearance_rank[inverse.reshape(-1)]
    n_classes = first_index.shape[0]
    counts = np.bincount(encoded, minlength=n_classes)
    smallest = int(np.argmin(counts))
    if counts[smallest] < folds:
        label = labels[first_index[np.argsort(appearance_rank)][smallest]].item()
        raise ValueError(
            f"Class {label!r} has only {counts[smallest]} rows, fewer than the {folds} folds asked for; "
            f"every class needs at least one row per fold (use at most {counts[smallest]} folds)."
        )
    dealt = np.sort(encoded)
    allocation = np.stack([np.bincount(dealt[fold::folds], minlength=n_classes) for fold in range(folds)])
    rng = np.random.default_rng(seed) if shuffle else None
    test_fold = np.empty(n, dtype=np.int64)
    for cls in range(n_classes):
        fold_of_row = np.repeat(np.arange(folds), allocation[:, cls])
        if rng is not None:
            fold_of_row = rng.permutation(fold_of_row)
        test_fold[encoded == cls] = fold_of_row
    return _pairs(test_fold, folds)


def _check_folds(n: int, folds: int) -> None:
    if folds < 2:
        raise ValueError(f"Cross-validation needs at least 2 folds; got {folds}.")
    if folds > n:
        raise ValueError(f"Cannot split {n} rows into {folds} folds; use at most {n} folds.")


def _pairs(test_fold: np.ndarray, folds: int) -> FoldPairs:
    rows = np.arange(test_fold.shape[0], dtype=np.int64)
    return [(rows[test_fold != fold], rows[test_fold == fold]) for fold in range(folds)]
