"""More of scikit-learn's answers reproduced exactly: correlated features, where the lasso and the
elastic net part ways; the lasso itself; and the alpha above which every coefficient is zero."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import ElasticNet

from worker.training import ArrayDataset, NullReporter, TrainConfig, train
from worker.training.config import ModelConfig, OptimizerConfig, RegularizationConfig, TrainingConfig


def correlated_regression(seed: int = 0) -> ArrayDataset:
    """Two groups of three features correlated at 0.9 (one group informative), two noise features."""
    rng = np.random.default_rng(seed)
    n = 300
    groups = [rng.standard_normal(n) for _ in range(2)]
    columns = [g + np.sqrt(1 / 0.9 - 1) * rng.standard_normal(n) for g in groups for _ in range(3)]
    columns += [rng.standard_normal(n) for _ in range(2)]
    X = np.column_stack(columns)
    y = 3.0 * X[:, :3].sum(axis=1) + 2.0 * X[:, 6] + rng.standard_normal(n)
    return ArrayDataset(X, y, tuple(f"x{i}" for i in range(X.shape[1])))


def fit_both(data: ArrayDataset, alpha: float, l1_ratio: float, steps: int) -> tuple[np.ndarray, ElasticNet]:
    X_std = (data.X - data.X.mean(axis=0)) / data.X.std(axis=0)
    n = len(data.y)
    lipschitz = np.linalg.svd(X_std, compute_uv=False)[0] ** 2 / n + alpha * (1 - l1_ratio)
    oracle = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-12, max_iter=1_000_000).fit(X_std, data.y)
    config = TrainConfig(
        task="regression",
        model=ModelConfig(type="linear"),
        regularization=RegularizationConfig(l1=alpha * l1_ratio, l2=alpha * (1 - l1_ratio)),
        optimizer=OptimizerConfig(type="sgd", lr=1.0 / lipschitz),
        training=TrainingConfig(epochs=steps, batch_size=None, validation_fraction=0.0, precision="float64"),
    )
    coef = train(config, data, NullReporter()).state["linear.weight"].numpy().ravel()
    return coef, oracle


@pytest.mark.parametrize(("alpha", "l1_ratio"), [(0.5, 1.0), (0.5, 0.3), (2.0, 0.5), (0.05, 0.9)])
def test_correlated_features_match_elastic_net(alpha: float, l1_ratio: float) -> None:
    coef, oracle = fit_both(correlated_regression(), alpha, l1_ratio, steps=2000)
    assert np.abs(coef - oracle.coef_).max() <= 1e-4 * np.abs(oracle.coef_).max()
    np.testing.assert_array_equal(coef == 0, oracle.coef_ == 0)


def test_lasso_drops_correlated_partners_that_the_elastic_net_keeps() -> None:
    data = correlated_regression()
    lasso, _ = fit_both(data, alpha=1.5, l1_ratio=1.0, steps=2000)
    mixed, _ = fit_both(data, alpha=1.5, l1_ratio=0.1, steps=2000)
    # The L2 part spreads weight over a correlated group; the pure L1 penalty needs fewer of them.
    assert np.count_nonzero(mixed[:3]) >= np.count_nonzero(lasso[:3])
    assert np.count_nonzero(mixed) > np.count_nonzero(lasso)
    assert np.count_nonzero(lasso[6:]) <= 1, "the noise-only group and features stay out of the lasso"


def test_every_coefficient_is_zero_from_alpha_max_on() -> None:
    data = correlated_regression()
    X_std = (data.X - data.X.mean(axis=0)) / data.X.std(axis=0)
    l1_ratio = 0.5
    alpha_max = np.abs(X_std.T @ (data.y - data.y.mean())).max() / (len(data.y) * l1_ratio)
    above, _ = fit_both(data, alpha=alpha_max * 1.001, l1_ratio=l1_ratio, steps=3000)
    below, _ = fit_both(data, alpha=alpha_max * 0.95, l1_ratio=l1_ratio, steps=3000)
    assert np.count_nonzero(above) == 0
    assert np.count_nonzero(below) >= 1
