"""Choosing one member of a cross-validated study: the best mean ("min") or glmnet's one-standard-error
rule ("1se").

Candidates are given in a fixed order with one penalty each (larger = stronger regularization: an
elastic-net alpha, or 1/C for logistic regression). Fold scores are per candidate and fold.

"min" takes the best mean; exact ties go to the first candidate in the order given, as scikit-learn's
``np.argmin``/``np.argmax`` do. scikit-learn orders its grids strongest penalty first (ElasticNetCV's
alphas descend, LogisticRegressionCV's default Cs ascend), and glmnet breaks ties toward the largest
lambda, so on those grids all three agree.

"1se" is glmnet's rule (``getOptcv.glmnet`` in glmnet 4.1): take the "min" candidate, its mean loss
``m`` and its standard error ``se``; choose the LARGEST penalty whose mean loss is ``<= m + se`` (for a
score where greater is better: mean score ``>= m - se``). The chosen penalty is never smaller than the
"min" one, since the "min" candidate itself qualifies.

glmnet's standard error (``cv.glmnet``)::

    cvsd = sqrt(apply(scale(cvraw, cvm, FALSE)^2, 2, weighted.mean, w = weights) / (N - 1))

With equal fold weights the weighted mean of squared deviations is ``sum((x - m)^2) / N``, so
``cvsd = sqrt(sum((x - m)^2) / (N (N - 1))) = std(x, ddof=1) / sqrt(N)``: the sample standard
deviation of the fold errors over the square root of the number of folds. glmnet weights each fold by
its total observation weight; ``fold_weights`` reproduces that, and None means equal weights (the
usual reading of the rule, and scikit-learn's unweighted fold mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Rule = Literal["min", "1se"]
RULES: tuple[Rule, ...] = ("min", "1se")


@dataclass(frozen=True)
class Selection:
    """The chosen candidate, and what the choice was made from.

    ``index`` is the chosen candidate, ``best_index`` the one with the best mean (they are equal for
    "min"). ``standard_errors`` holds glmnet's cvsd for every candidate, in the units of the scores.
    ``threshold`` is the mean a candidate had to reach: the best mean for "min", best mean plus (or,
    when greater is better, minus) its standard error for "1se".
    """

    index: int
    best_index: int
    rule: Rule
    threshold: float
    standard_errors: np.ndarray


def standard_errors(
    mean_scores: np.ndarray, fold_scores: np.ndarray, fold_weights: np.ndarray | None = None
) -> np.ndarray:
    """glmnet's cvsd for each candidate: ``sqrt(weighted mean of (fold - mean)^2 / (folds - 1))``.

    ``fold_scores`` has shape (candidates, folds); with equal weights this is
    ``fold_scores.std(axis=1, ddof=1) / sqrt(folds)`` (deviations taken from ``mean_scores``).
    """
    mean_scores = np.asarray(mean_scores, dtype=np.float64)
    fold_scores = np.asarray(fold_scores, dtype=np.float64)
    folds = fold_scores.shape[1]
    if folds < 2:
        raise ValueError(f"A standard error needs at least 2 folds; got {folds}.")
    weights = np.ones(folds) if fold_weights is None else np.asarray(fold_weights, dtype=np.float64)
    squared_deviations = (fold_scores - mean_scores[:, None]) ** 2
    weighted_mean = squared_deviations @ weights / weights.sum()
    return np.sqrt(weighted_mean / (folds - 1))


def select(
    mean_scores: np.ndarray,
    fold_scores: np.ndarray,
    penalties: np.ndarray,
    rule: Rule,
    greater_is_better: bool,
    fold_weights: np.ndarray | None = None,
) -> Selection:
    """Choose a candidate by ``rule`` ("min" or "1se"); see the module docstring for the exact rules.

    ``mean_scores`` (candidates,), ``fold_scores`` (candidates, folds), ``penalties`` (candidates,):
    larger means more regularization. ``greater_is_better`` is False for losses (MSE, log loss) and
    True for scores (accuracy, negative log loss).
    """
    mean_scores = np.asarray(mean_scores, dtype=np.float64)
    fold_scores = np.asarray(fold_scores, dtype=np.float64)
    penalties = np.asarray(penalties, dtype=np.float64)
    candidates = mean_scores.shape[0]
    if mean_scores.ndim != 1 or candidates == 0:
        raise ValueError("Selection needs a non-empty one-dimensional array of mean scores.")
    if penalties.shape != (candidates,) or fold_scores.ndim != 2 or fold_scores.shape[0] != candidates:
        raise ValueError(
            f"Selection needs one penalty and one row of fold scores per candidate; got {candidates} means, "
            f"penalties of shape {penalties.shape} and fold scores of shape {fold_scores.shape}."
        )
    if rule not in RULES:
        raise ValueError(f"Unknown selection rule {rule!r}; use one of {', '.join(RULES)}.")
    if np.isnan(mean_scores).any():
        raise ValueError("Selection got a NaN mean score; every candidate needs a finite score.")

    best_index = int(np.argmax(mean_scores) if greater_is_better else np.argmin(mean_scores))
    errors = standard_errors(mean_scores, fold_scores, fold_weights)
    if rule == "min":
        return Selection(best_index, best_index, rule, float(mean_scores[best_index]), errors)

    # A fold score of inf makes the standard error NaN: then no slack, the best candidate alone qualifies.
    slack = errors[best_index] if np.isfinite(errors[best_index]) else 0.0
    if greater_is_better:
        threshold = mean_scores[best_index] - slack
        qualifies = mean_scores >= threshold
    else:
        threshold = mean_scores[best_index] + slack
        qualifies = mean_scores <= threshold
    # The best candidate always qualifies; among the qualifying, the largest penalty (first on ties).
    qualifying = np.flatnonzero(qualifies)
    index = int(qualifying[np.argmax(penalties[qualifying])])
    return Selection(index, best_index, rule, float(threshold), errors)
