"""The "min" and glmnet "1se" rules: direction, arithmetic and glmnet's standard error."""

from __future__ import annotations

import numpy as np
import pytest

from worker.training.selection import select, standard_errors


def test_one_se_rule_by_hand() -> None:
    # Four lambdas, largest first as glmnet orders them, three folds of CV error each (the last row
    # is set below).
    penalties = np.array([1.0, 0.5, 0.25, 0.125])
    fold_errors = np.array(
        [
            [5.0, 6.0, 7.0],  # mean 6
            [3.0, 4.0, 5.0],  # mean 4
            [2.0, 3.0, 4.0],  # mean 3  <- minimum
            [0.0, 0.0, 0.0],
        ]
    )
    fold_errors[3] = [3.0, 3.5, 4.0]  # mean 3.5
    means = fold_errors.mean(axis=1)
    # glmnet: cvsd = sqrt(mean((x - m)^2) / (N - 1)). At the minimum (fold errors 2, 3, 4; m = 3):
    # squared deviations 1, 0, 1 -> mean 2/3 -> / (3 - 1) = 1/3 -> cvsd = sqrt(1/3) = 0.57735...
    # That is std(ddof=1) / sqrt(3) = 1 / sqrt(3). Threshold = 3 + 0.57735 = 3.57735.
    # Means 6, 4, 3, 3.5: those <= 3.57735 are lambdas 0.25 and 0.125; the LARGEST is 0.25 ... the
    # minimum itself. Lambda 0.5 (mean 4) does not qualify.
    chosen = select(means, fold_errors, penalties, "1se", greater_is_better=False)
    assert chosen.best_index == 2
    assert chosen.standard_errors[2] == pytest.approx(np.sqrt(1 / 3), rel=1e-15)
    assert chosen.threshold == pytest.approx(3 + np.sqrt(1 / 3), rel=1e-15)
    assert chosen.index == 2

    # Widen the minimum's folds to 1, 3, 5 (m = 3): squared deviations 4, 0, 4 -> mean 8/3 -> / 2 ->
    # 4/3 -> cvsd = 1.1547; threshold 4.1547, so lambda 0.5 (mean 4) qualifies and is the largest.
    fold_errors[2] = [1.0, 3.0, 5.0]
    chosen = select(fold_errors.mean(axis=1), fold_errors, penalties, "1se", greater_is_better=False)
    assert chosen.standard_errors[2] == pytest.approx(np.sqrt(4 / 3), rel=1e-15)
    assert chosen.index == 1 and penalties[chosen.index] == 0.5
    assert select(fold_errors.mean(axis=1), fold_errors, penalties, "min", greater_is_better=False).index == 2


def test_standard_error_is_sample_std_over_sqrt_folds() -> None:
    rng = np.random.default_rng(0)
    folds = rng.normal(size=(7, 5))
    np.testing.assert_allclose(
        standard_errors(folds.mean(axis=1), folds), folds.std(axis=1, ddof=1) / np.sqrt(5), rtol=1e-14
    )


def test_one_se_never_picks_a_smaller_penalty_than_min() -> None:
    rng = np.random.default_rng(1)
    for trial in range(500):
        candidates, folds = int(rng.integers(1, 30)), int(rng.integers(2, 11))
        fold_scores = rng.normal(size=(candidates, folds)) + rng.normal(size=(candidates, 1))
        if trial % 5 == 0:
            fold_scores = np.round(fold_scores, 1)  # ties
        penalties = rng.permutation(np.geomspace(1e-3, 1e2, candidates))
        greater = bool(trial % 2)
        means = fold_scores.mean(axis=1)
        best = select(means, fold_scores, penalties, "min", greater)
        one_se = select(means, fold_scores, penalties, "1se", greater)
        assert one_se.best_index == best.index
        assert penalties[one_se.index] >= penalties[best.index]
        if greater:
            assert means[one_se.index] >= means[best.index] - one_se.standard_errors[best.index]
        else:
            assert means[one_se.index] <= means[best.index] + one_se.standard_errors[best.index]


def test_min_ties_go_to_the_first_candidate() -> None:
    means = np.array([2.0, 1.0, 1.0])
    folds = np.tile(means[:, None], (1, 3))
    assert select(means, folds, np.array([3.0, 2.0, 1.0]), "min", greater_is_better=False).index == 1
    assert select(-means, -folds, np.array([3.0, 2.0, 1.0]), "min", greater_is_better=True).index == 1


def test_refuses_unknown_rule_and_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="Unknown selection rule"):
        select(np.zeros(2), np.zeros((2, 3)), np.ones(2), "best", False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one penalty and one row"):
        select(np.zeros(2), np.zeros((3, 3)), np.ones(2), "min", False)
