"""The result's metrics, computed on the host from one split's outputs (one transfer per evaluation).

Each is scikit-learn's function on the same predictions (tests/worker/training/test_engine_metrics.py
checks them against it), written in NumPy so that the worker needs no scikit-learn to train:

    balanced_accuracy  balanced_accuracy_score: mean recall over the classes present in y_true
    f1_macro           f1_score(average="macro"): mean F1 over the classes in y_true or y_pred
    log_loss           log_loss(labels=all classes): mean -log p(true class), p clipped to [eps, 1 - eps]
    roc_auc            roc_auc_score: binary on the positive class's probability; with more classes the
                       macro average of one-vs-rest AUCs (multi_class="ovr"). None when a class of the
                       job is missing from the split (the AUC is undefined).
    confusion_matrix   confusion_matrix(labels=all classes): rows true class, columns predicted, in the
                       order of the job's classes
    mae                mean_absolute_error
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata


def probabilities(logits: np.ndarray) -> np.ndarray:
    """(N, K) class probabilities from the network's outputs: one logit is the positive class's
    log-odds (two classes), more are softmax logits."""
    logits = logits.astype(np.float64)
    if logits.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        return np.column_stack([1.0 - positive, positive])
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney form of the ROC AUC: ties count one half, as the trapezoids of the ROC curve do."""
    return _auc_from_ranks(positive, rankdata(score))


def _auc_from_ranks(positive: np.ndarray, ranks: np.ndarray) -> float:
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def one_vs_rest_auc(proba: np.ndarray, y_true: np.ndarray, n_classes: int) -> float:
    """The mean over classes of each class's binary AUC against the rest (scikit-learn's `ovr`, macro),
    with every class's scores ranked in one call."""
    ranks = rankdata(proba, axis=0)
    return float(np.mean([_auc_from_ranks(y_true == c, ranks[:, c]) for c in range(n_classes)]))


def classification_metrics(logits: np.ndarray, y_true: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Every classification metric of the result for one split. `y_true` holds class indices 0..K-1."""
    proba = probabilities(logits)
    y_pred = proba.argmax(axis=1)
    matrix = confusion(y_true, y_pred, n_classes)
    true_counts, predicted_counts, hits = matrix.sum(axis=1), matrix.sum(axis=0), np.diag(matrix)
    present = true_counts > 0
    # F1 = 2tp / (2tp + fp + fn); scikit-learn averages over the labels seen in y_true or y_pred.
    seen = present | (predicted_counts > 0)
    f1 = 2 * hits[seen] / (true_counts[seen] + predicted_counts[seen])
    eps = np.finfo(np.float64).eps
    clipped = np.clip(proba[np.arange(len(y_true)), y_true], eps, 1 - eps)
    if not present.all():
        roc_auc = None
    elif n_classes == 2:
        roc_auc = binary_auc(y_true == 1, proba[:, 1])
    else:
        roc_auc = one_vs_rest_auc(proba, y_true, n_classes)
    return {
        "accuracy": float(hits.sum() / len(y_true)),
        "balanced_accuracy": float(np.mean(hits[present] / true_counts[present])),
        "f1_macro": float(f1.mean()),
        "log_loss": float(-np.log(clipped).mean()),
        "roc_auc": roc_auc,
        "confusion_matrix": matrix.tolist(),
    }


def regression_metrics(output: np.ndarray, y_true: np.ndarray) -> dict[str, float]:
    """What regression adds to `evaluate`'s r2 and rmse."""
    return {"mae": float(np.abs(y_true.astype(np.float64) - output.astype(np.float64).reshape(-1)).mean())}
