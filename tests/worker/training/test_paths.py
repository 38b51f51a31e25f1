"""Path solvers equal scikit-learn: alpha grid, enet_path, ElasticNetCV / LassoCV, LogisticRegression(CV).

scikit-learn is the oracle, run with tight tolerances where its defaults (tol=1e-4) would leave it
short of the optimum our exact solvers reach.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import ElasticNetCV, LassoCV, LogisticRegression, LogisticRegressionCV
from sklearn.linear_model import enet_path as sklearn_enet_path
from sklearn.linear_model._coordinate_descent import _alpha_grid
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from worker.training.folds import kfold, stratified_kfold
from worker.training.paths import alpha_grid, elastic_net_cv, enet_path, logistic_cv, logistic_l2_path

TIGHT = {"tol": 1e-12, "max_iter": 200_000}


def correlated_regression(
    n: int = 240, p: int = 24, seed: int = 0, offset: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """Groups of correlated columns, a sparse truth, noise, and an offset so the intercept matters."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, p // 4))
    X = np.repeat(latent, 4, axis=1) + 0.5 * rng.standard_normal((n, p)) + offset
    truth = np.zeros(p)
    truth[rng.choice(p, 5, replace=False)] = rng.normal(0, 2, 5)
    return X, X @ truth + 7.0 + rng.standard_normal(n)


def assert_close_to_largest(ours: np.ndarray, theirs: np.ndarray, tolerance: float = 1e-6) -> None:
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() <= tolerance * scale


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5, 0.05])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_alpha_grid_equals_sklearn(l1_ratio: float, fit_intercept: bool) -> None:
    X, y = correlated_regression()
    ours = alpha_grid(X, y, l1_ratio, n_alphas=100, eps=1e-3, fit_intercept=fit_intercept)
    theirs = _alpha_grid(X, y, l1_ratio=l1_ratio, fit_intercept=fit_intercept, eps=1e-3, n_alphas=100)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)


def test_alpha_grid_refuses_ridge_and_handles_constant_target() -> None:
    X, y = correlated_regression()
    with pytest.raises(ValueError, match="l1_ratio > 0"):
        alpha_grid(X, y, 0.0)
    np.testing.assert_array_equal(alpha_grid(X, np.full(y.shape, 2.0), 1.0, n_alphas=3), np.full(3, 1e-15))


@pytest.mark.parametrize("l1_ratio", [1.0, 0.7, 0.2])
def test_enet_path_equals_sklearn_with_the_same_exact_zeros(l1_ratio: float) -> None:
    X, y = correlated_regression()
    path = enet_path(X, y, l1_ratio)
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    alphas, coefs, _ = sklearn_enet_path(Xc, yc, l1_ratio=l1_ratio, alphas=path.alphas, **TIGHT)
    np.testing.assert_array_equal(path.alphas, alphas)
    assert path.coefs.shape == (X.shape[1], 100)
    assert_close_to_largest(path.coefs, coefs)
    np.testing.assert_array_equal(path.coefs == 0, coefs == 0)
    assert np.all(path.coefs[:, 0] == 0)  # alpha_max zeroes everything
    np.testing.assert_allclose(path.intercepts, y.mean() - X.mean(axis=0) @ path.coefs, rtol=1e-12)


def test_enet_path_without_intercept_and_ridge_with_explicit_alphas() -> None:
    X, y = correlated_regression(offset=0.0)
    path = enet_path(X, y, 0.5, fit_intercept=False, n_alphas=30)
    _, coefs, _ = sklearn_enet_path(X, y, l1_ratio=0.5, alphas=path.alphas, **TIGHT)
    assert_close_to_largest(path.coefs, coefs)
    np.testing.assert_array_equal(path.intercepts, 0.0)

    alphas = [0.01, 10.0, 1.0]  # sorted descending, as scikit-learn's enet_path does
    ridge = enet_path(X, y, 0.0, alphas=alphas)
    np.testing.assert_array_equal(ridge.alphas, [10.0, 1.0, 0.01])
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    for k, alpha in enumerate(ridge.alphas):
        # ElasticNet with l1_ratio=0: (Xc^T Xc / n + alpha I) w = Xc^T yc / n.
        exact = np.linalg.solve(Xc.T @ Xc / len(y) + alpha * np.eye(X.shape[1]), Xc.T @ yc / len(y))
        assert_close_to_largest(ridge.coefs[:, k], exact, 1e-10)


@pytest.mark.parametrize("l1_ratios", [[1.0], [0.1, 0.5, 0.9]])
def test_elastic_net_cv_equals_sklearn(l1_ratios: list[float]) -> None:
    X, y = correlated_regression(n=300, p=20, seed=3)
    ours = elastic_net_cv(X, y, l1_ratios, folds=kfold(len(y), 5), n_alphas=50)
    if l1_ratios == [1.0]:
        theirs = LassoCV(alphas=50, cv=KFold(5), **TIGHT).fit(X, y)
        their_mse, their_alphas = theirs.mse_path_[None], theirs.alphas_[None]
        assert ours.l1_ratio == 1.0
    else:
        theirs = ElasticNetCV(l1_ratio=l1_ratios, alphas=50, cv=KFold(5), **TIGHT).fit(X, y)
        their_mse, their_alphas = theirs.mse_path_, theirs.alphas_
        assert ours.l1_ratio == theirs.l1_ratio_
    np.testing.assert_allclose(ours.alphas, their_alphas, rtol=1e-12)
    assert ours.mse_path.shape == (len(l1_ratios), 50, 5)
    np.testing.assert_allclose(ours.mse_path, their_mse, rtol=1e-6)
    assert ours.alpha == theirs.alpha_
    assert_close_to_largest(ours.coef, theirs.coef_)
    np.testing.assert_array_equal(ours.coef == 0, theirs.coef_ == 0)
    assert ours.intercept == pytest.approx(theirs.intercept_, rel=1e-6)


def test_elastic_net_cv_one_se_picks_a_larger_alpha_on_the_chosen_l1_ratio() -> None:
    X, y = correlated_regression(n=200, p=16, seed=5)
    best = elastic_net_cv(X, y, [0.5, 1.0], n_alphas=40)
    sparse = elastic_net_cv(X, y, [0.5, 1.0], n_alphas=40, rule="1se")
    assert sparse.l1_ratio == best.l1_ratio
    assert sparse.alpha >= best.alpha
    assert np.count_nonzero(sparse.coef) <= np.count_nonzero(best.coef)


def scaled(data: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    X, y = data
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize("dataset", ["breast_cancer", "iris"])
def test_logistic_l2_path_equals_logistic_regression(dataset: str) -> None:
    X, y = scaled(load_breast_cancer(return_X_y=True) if dataset == "breast_cancer" else load_iris(return_X_y=True))
    Cs = [0.01, 1.0, 100.0]
    path = logistic_l2_path(X, y, Cs)
    for k, C in enumerate(Cs):
        oracle = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)
        assert_close_to_largest(path.coefs[k], oracle.coef_, 1e-5)
        ours_proba = _proba(X @ path.coefs[k].T + path.intercepts[k])
        np.testing.assert_allclose(ours_proba, oracle.predict_proba(X), atol=1e-6)


def _proba(logits: np.ndarray) -> np.ndarray:
    if logits.shape[1] == 1:
        positive = 1 / (1 + np.exp(-logits[:, 0]))
        return np.stack([1 - positive, positive], axis=1)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def synthetic_classes() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((240, 6))
    logits = X @ rng.normal(0, 1.5, (6, 3))
    return X, np.array(["a", "b", "c"])[np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)]


@pytest.mark.parametrize("dataset", ["breast_cancer", "iris", "synthetic"])
@pytest.mark.parametrize("scoring", ["accuracy", "neg_log_loss"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_logistic_cv_chooses_the_same_C_as_sklearn(dataset: str, scoring: str) -> None:
    if dataset == "synthetic":
        X, y = synthetic_classes()
    else:
        X, y = scaled(load_breast_cancer(return_X_y=True) if dataset == "breast_cancer" else load_iris(return_X_y=True))
    ours = logistic_cv(X, y, Cs=10, folds=stratified_kfold(y, 5), scoring=scoring)  # type: ignore[arg-type]
    np.testing.assert_array_equal(ours.Cs, np.logspace(-4, 4, 10))

    # scikit-learn as shipped (lbfgs, tol=1e-4, 100 iterations; it warns at large C on breast_cancer).
    default = LogisticRegressionCV(
        Cs=10, cv=StratifiedKFold(5), scoring=scoring, l1_ratios=(0,), use_legacy_attributes=True
    )
    assert default.fit(X, y).C_[0] == ours.C

    # scikit-learn solved to the optimum: the fold scores and the refit agree to 1e-6.
    exact = LogisticRegressionCV(
        Cs=10,
        cv=StratifiedKFold(5),
        scoring=scoring,
        l1_ratios=(0,),
        use_legacy_attributes=True,
        solver="newton-cholesky",
        tol=1e-12,
        max_iter=1000,
    ).fit(X, y)
    their_scores = next(iter(exact.scores_.values()))[:, :, 0].T  # (Cs, folds)
    np.testing.assert_allclose(ours.scores, their_scores, rtol=1e-6, atol=1e-9)
    assert exact.C_[0] == ours.C
    assert_close_to_largest(ours.coef, exact.coef_, 1e-6)
