"""Convex linear members along a warm-started regularization path, and their cross-validation.

Two families, each equal to scikit-learn on the same data (the tests check it against scikit-learn 1.9):

- Gaussian elastic net (lasso: ``l1_ratio=1``; ridge: ``l1_ratio=0``), scikit-learn's ElasticNet::

      1/(2n) ||y - X w - b||^2 + alpha * l1_ratio * ||w||_1 + alpha * (1 - l1_ratio) / 2 * ||w||^2

  which is this project's objective (README, "The objective") with the regression loss (1/2)(y - y_hat)^2
  averaged over the n rows, ``l1 = alpha * l1_ratio`` and ``l2 = alpha * (1 - l1_ratio)``. The
  intercept b is not penalized: X and y are centered on the rows being fitted and
  ``b = mean(y) - mean(X) @ w``. ``enet_path`` equals ``sklearn.linear_model.enet_path`` (on centered
  data), ``elastic_net_cv`` equals ``ElasticNetCV`` / ``LassoCV``.

- L2 logistic regression, scikit-learn's LogisticRegression::

      C * sum_i loss_i + 1/2 ||W||^2        (loss_i = cross-entropy; intercepts not penalized)

  which is this project's objective with the mean cross-entropy and ``l2 = 1 / (n * C)`` (n = rows
  fitted; divide the objective by n * C). Two classes use one logit (sigmoid), as scikit-learn does;
  more classes use the multinomial softmax with one weight vector per class, all penalized.
  ``logistic_l2_path`` follows ``_logistic_regression_path``, ``logistic_cv`` equals
  ``LogisticRegressionCV``.

How the elastic net is solved, and why. Each problem is reduced to its Gram matrix
``G = Xc^T Xc / n`` and ``c = Xc^T yc / n`` (n >= p is the intended case: O(p^2) memory), and each
alpha is solved EXACTLY by an active-set method (the feature-sign search of Lee, Battle, Raina and Ng,
2007): on a support with fixed signs s the elastic net is the linear system
``(G_AA + l2 I) w_A = c_A - l1 s_A``; a discrete line search handles sign changes and coordinates that
violate the optimality conditions join the support. Warm-started from the previous alpha the support
rarely changes, so most alphas cost one linear solve, and the result is the optimum to rounding error
rather than to a tolerance (so it meets scikit-learn run with a tight ``tol`` to ~1e-10, with the
same exact zeros). Coordinate descent in Python is two orders of magnitude slower; a proximal-gradient
method needs thousands of iterations per alpha on correlated features. Cross-validation forms one Gram
per fold (shared by every l1_ratio), so the data is touched once per fold.

Logistic regression is solved by Newton's method with a backtracking line search, float64, warm-started
along the Cs, to a step of 1e-9 relative (well beyond scikit-learn's default ``tol=1e-4``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from worker.training.folds import FoldPairs, kfold, stratified_kfold
from worker.training.selection import Rule, Selection, select

# scikit-learn's floor for a degenerate grid (y constant): every alpha becomes finfo(float64).resolution.
_RESOLUTION = float(np.finfo(np.float64).resolution)
# Optimality is checked on the gradient to this fraction of max|X^T y| / n (= alpha_max * l1_ratio):
# far below what the 1e-6 comparisons need, far above the rounding of one gradient evaluation.
_KKT_RELATIVE_TOLERANCE = 1e-11
# LogisticRegressionCV's default folds and grid: StratifiedKFold(5), Cs=10 -> np.logspace(-4, 4, 10).
DEFAULT_FOLDS = 5
Scoring = Literal["accuracy", "neg_log_loss"]


# --------------------------------------------------------------------------------------------------
# Gaussian elastic net
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ElasticNetPath:
    """Solutions along a path: ``coefs[:, k]`` and ``intercepts[k]`` solve the problem at ``alphas[k]``.

    ``alphas`` are in descending order (the order they were solved in, each warm-started from the
    previous one), as scikit-learn's enet_path returns them. ``coefs`` has shape (features, alphas).
    """

    alphas: np.ndarray
    coefs: np.ndarray
    intercepts: np.ndarray
    l1_ratio: float


@dataclass(frozen=True)
class ElasticNetCVResult:
    """Cross-validated elastic net, laid out as ElasticNetCV's attributes.

    ``alphas`` (l1_ratios, alphas): each row is the grid of one l1_ratio, descending.
    ``mse_path`` (l1_ratios, alphas, folds): plain mean squared error (not half of it) of each fold's
    held-out rows. ``mean_mse`` (l1_ratios, alphas): its mean over folds. ``alpha`` and ``l1_ratio``
    are the chosen pair (``l1_ratio_index``, ``alpha_index`` into the arrays above); ``coef`` and
    ``intercept`` are the refit on all rows at that pair. ``selection`` tells how the alpha was chosen
    along the chosen l1_ratio's path.
    """

    l1_ratios: np.ndarray
    alphas: np.ndarray
    mse_path: np.ndarray
    mean_mse: np.ndarray
    l1_ratio_index: int
    alpha_index: int
    alpha: float
    l1_ratio: float
    coef: np.ndarray
    intercept: float
    selection: Selection


@dataclass(frozen=True)
class _GramProblem:
    """A least-squares problem reduced to what the solver needs: centered cross products over n."""

    gram: np.ndarray  # Xc^T Xc / n, (p, p)
    xty: np.ndarray  # Xc^T yc / n, (p,)
    x_mean: np.ndarray  # the centering offsets (zeros without an intercept)
    y_mean: float


def alpha_grid(
    X: np.ndarray,
    y: np.ndarray,
    l1_ratio: float,
    n_alphas: int = 100,
    eps: float = 1e-3,
    fit_intercept: bool = True,
) -> np.ndarray:
    """scikit-learn's automatic alpha grid (``_alpha_grid``), descending.

    ``alpha_max = max_j |Xc_j^T yc| / (n * l1_ratio)`` on data centered when ``fit_intercept`` (every
    coefficient is zero from there on), then ``np.geomspace(alpha_max, eps * alpha_max, n_alphas)``;
    when alpha_max is 0 (y constant) every alpha is ``finfo(float64).resolution``, as scikit-learn.

    For ``l1_ratio = 0`` (ridge) there is no finite alpha that zeroes every coefficient, so no grid to
    derive: like scikit-learn this raises ValueError, and a ridge path needs explicit ``alphas``.
    """
    X, y = _check_xy(X, y)
    _check_l1_ratio(l1_ratio)
    if l1_ratio == 0:
        raise ValueError(
            "An automatic alpha grid needs l1_ratio > 0: with l1_ratio = 0 (ridge) no alpha makes every "
            "coefficient zero, so give the alphas explicitly."
        )
    if n_alphas < 1 or not eps > 0:
        raise ValueError(f"An alpha grid needs n_alphas >= 1 and eps > 0; got n_alphas={n_alphas}, eps={eps}.")
    n = X.shape[0]
    if fit_intercept:
        # The same arithmetic as scikit-learn's (centering y, correcting X^T y by the mean of X), so
        # the grid agrees to the last bits rather than to rounding.
        y = y - np.average(y, axis=0)
        xty = X.T @ y - np.average(X, axis=0) * np.sum(y, axis=0)
    else:
        xty = X.T @ y
    alpha_max = float(np.sqrt(np.max(xty**2))) / (n * l1_ratio)
    if alpha_max <= _RESOLUTION:
        return np.full(n_alphas, _RESOLUTION)
    return np.geomspace(alpha_max, alpha_max * eps, num=n_alphas)


def enet_path(
    X: np.ndarray,
    y: np.ndarray,
    l1_ratio: float = 1.0,
    alphas: Sequence[float] | np.ndarray | None = None,
    *,
    n_alphas: int = 100,
    eps: float = 1e-3,
    fit_intercept: bool = True,
) -> ElasticNetPath:
    """The elastic net solved at every alpha, largest first, each warm-started from the previous.

    ``alphas=None`` takes ``alpha_grid(X, y, l1_ratio, n_alphas, eps, fit_intercept)``; given alphas
    are sorted descending, as scikit-learn's enet_path does. With ``fit_intercept`` the problem is
    centered first, so the coefficients equal ``sklearn.linear_model.enet_path`` on centered X and y
    (and ``ElasticNet(alpha, l1_ratio)`` at each alpha); without it they equal enet_path on X and y.
    """
    X, y = _check_xy(X, y)
    _check_l1_ratio(l1_ratio)
    grid = alpha_grid(X, y, l1_ratio, n_alphas, eps, fit_intercept) if alphas is None else _check_alphas(alphas)
    problem = _gram_problem(X, y, fit_intercept)
    coefs = _solve_path(problem, l1_ratio, grid)
    intercepts = problem.y_mean - problem.x_mean @ coefs
    return ElasticNetPath(alphas=grid, coefs=coefs, intercepts=intercepts, l1_ratio=float(l1_ratio))


def elastic_net_cv(
    X: np.ndarray,
    y: np.ndarray,
    l1_ratios: Sequence[float] | np.ndarray = (1.0,),
    folds: FoldPairs | None = None,
    n_alphas: int = 100,
    eps: float = 1e-3,
    alphas: Sequence[float] | np.ndarray | None = None,
    *,
    fit_intercept: bool = True,
    rule: Rule = "min",
) -> ElasticNetCVResult:
    """Cross-validated elastic net, equal to ``ElasticNetCV(l1_ratio=l1_ratios, cv=...)`` (``LassoCV``
    for ``l1_ratios=(1,)``).

    ``folds`` are (train_idx, test_idx) pairs; None means ``kfold(n, 5)`` (= KFold(5), ElasticNetCV's
    default). Each l1_ratio gets its grid from ALL rows (``alpha_grid``), unless ``alphas`` are given
    (then sorted descending and shared). For each l1_ratio and fold a warm-started path is solved on
    the fold's training rows, centered on those rows, and scored by the plain MSE of the held-out rows.

    ``rule="min"``: the pair with the smallest mean MSE, scikit-learn's choice (ties: first l1_ratio,
    then the largest alpha). ``rule="1se"``: the l1_ratio chosen by "min", then glmnet's one-standard-
    error rule along that l1_ratio's alphas (see selection.py). The refit solves the chosen pair on all
    rows (scikit-learn refits with ElasticNet; both are the same optimum).
    """
    X, y = _check_xy(X, y)
    n, _ = X.shape
    ratios = np.atleast_1d(np.asarray(l1_ratios, dtype=np.float64))
    if ratios.ndim != 1 or ratios.size == 0:
        raise ValueError("elastic_net_cv needs at least one l1_ratio.")
    for ratio in ratios:
        _check_l1_ratio(float(ratio))
    pairs = kfold(n, DEFAULT_FOLDS) if folds is None else _check_fold_pairs(folds, n)
    if alphas is None:
        grids = np.stack([alpha_grid(X, y, float(r), n_alphas, eps, fit_intercept) for r in ratios])
    else:
        grids = np.tile(_check_alphas(alphas), (ratios.size, 1))

    # One Gram per fold, shared by every l1_ratio; the data is centered once on all rows first so
    # that the per-fold centering corrects a small mean (no cancellation when X has large offsets).
    x_center = X.mean(axis=0) if fit_intercept else np.zeros(X.shape[1])
    y_center = float(y.mean()) if fit_intercept else 0.0
    Xc, yc = X - x_center, y - y_center
    mse_path = np.empty((ratios.size, grids.shape[1], len(pairs)))
    for fold, (train, test) in enumerate(pairs):
        problem = _gram_problem(Xc[train], yc[train], fit_intercept)
        for r, ratio in enumerate(ratios):
            coefs = _solve_path(problem, float(ratio), grids[r])
            intercepts = problem.y_mean - problem.x_mean @ coefs
            residuals = Xc[test] @ coefs + intercepts - yc[test][:, None]
            mse_path[r, :, fold] = np.mean(residuals**2, axis=0)

    # scikit-learn's arithmetic: mean over folds, then per l1_ratio the argmin, kept only if strictly
    # better than the l1_ratios before it.
    mean_mse = np.mean(np.moveaxis(mse_path, 2, 1), axis=1)
    best_ratio = 0
    for r in range(1, ratios.size):
        if mean_mse[r].min() < mean_mse[best_ratio].min():
            best_ratio = r
    selection = select(mean_mse[best_ratio], mse_path[best_ratio], grids[best_ratio], rule, greater_is_better=False)
    alpha_index = selection.index

    full = _gram_problem(X, y, fit_intercept)
    refit = _solve_path(full, float(ratios[best_ratio]), grids[best_ratio, : alpha_index + 1])[:, -1]
    return ElasticNetCVResult(
        l1_ratios=ratios,
        alphas=grids,
        mse_path=mse_path,
        mean_mse=mean_mse,
        l1_ratio_index=best_ratio,
        alpha_index=alpha_index,
        alpha=float(grids[best_ratio, alpha_index]),
        l1_ratio=float(ratios[best_ratio]),
        coef=refit,
        intercept=float(full.y_mean - full.x_mean @ refit),
        selection=selection,
    )


def _gram_problem(X: np.ndarray, y: np.ndarray, fit_intercept: bool) -> _GramProblem:
    n = X.shape[0]
    if fit_intercept:
        x_mean = X.mean(axis=0)
        y_mean = float(y.mean())
        X = X - x_mean
        y = y - y_mean
    else:
        x_mean, y_mean = np.zeros(X.shape[1]), 0.0
    return _GramProblem(gram=(X.T @ X) / n, xty=(X.T @ y) / n, x_mean=x_mean, y_mean=y_mean)


def _solve_path(problem: _GramProblem, l1_ratio: float, alphas: np.ndarray) -> np.ndarray:
    """Coefficients (p, len(alphas)), each alpha warm-started from the one before.

    Coordinates about to enter are predicted by extrapolating their gradient linearly from the two
    previous alphas: when the prediction is right (it mostly is on a fine grid) the new alpha costs
    one linear solve instead of two; when wrong, the solver drops the newcomer again.
    """
    p = problem.xty.shape[0]
    tolerance = _KKT_RELATIVE_TOLERANCE * max(float(np.abs(problem.xty).max(initial=0.0)), _RESOLUTION)
    coefs = np.empty((p, alphas.shape[0]))
    w = np.zeros(p)
    gradient = -problem.xty
    previous_gradient = gradient
    for k, alpha in enumerate(alphas):
        l1 = alpha * l1_ratio
        if k >= 2 and alphas[k - 1] != alphas[k - 2]:
            ratio = (alpha - alphas[k - 1]) / (alphas[k - 1] - alphas[k - 2])
            predicted = gradient + ratio * (gradient - previous_gradient)
        else:
            predicted = gradient
        entering = (w == 0) & (np.abs(predicted) > l1 + tolerance)
        previous_gradient = gradient
        w, gradient = _solve_active_set(
            problem.gram, problem.xty, l1, alpha * (1.0 - l1_ratio), w, tolerance, entering, -np.sign(predicted)
        )
        coefs[:, k] = w
    return coefs


def _solve_active_set(
    gram: np.ndarray,
    xty: np.ndarray,
    l1: float,
    l2: float,
    start: np.ndarray,
    tolerance: float,
    entering: np.ndarray | None,
    entering_sign: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Minimize ``1/2 w^T (gram + l2 I) w - xty^T w + l1 ||w||_1`` exactly, from ``start``.

    Feature-sign search: coordinates that violate |gradient| <= l1 at zero join the support with the
    sign that lowers the objective; the linear system on the support with those signs is solved; if
    some coefficient would change sign on the way, a discrete line search over the points where
    coefficients cross zero keeps the lowest objective and drops the crossed coordinates. Every step
    lowers the objective strictly and the sign patterns are finite, so the loop ends at the optimum.

    ``entering`` (mask) coordinates join the first support with ``entering_sign``, a guess that costs
    at most one extra solve when wrong. Returns the solution and the gradient of the smooth part there.
    """
    p = xty.shape[0]
    w = start.copy()
    solved_support = False  # True right after a full step: the support's conditions hold by construction.
    for _ in range(20 + 4 * p):
        gradient = gram @ w + l2 * w - xty
        sign = np.sign(w)
        nonzero = sign != 0
        support_optimal = (
            solved_support or not nonzero.any() or np.abs(gradient[nonzero] + l1 * sign[nonzero]).max() <= tolerance
        )
        # As in feature-sign search, coordinates join only once the support is optimal: a warm start's
        # violators mostly stop violating once the support has moved to the new alpha.
        violators = ~nonzero & (np.abs(gradient) > l1 + tolerance) if support_optimal else np.zeros(p, dtype=bool)
        if support_optimal and not violators.any():
            return w, gradient
        sign[violators] = -np.sign(gradient[violators])
        if entering is not None:
            guessed = entering & ~nonzero & ~violators
            sign[guessed] = entering_sign[guessed]
            violators |= guessed
            entering = None
        support = np.flatnonzero(nonzero | violators)
        while True:
            target, system = _solve_support(gram, xty, l1, l2, support, sign[support])
            # A newcomer whose solution has the wrong sign would break the descent argument: leave it
            # out and solve again (it rejoins later if it still violates the conditions).
            wrong_newcomers = (w[support] == 0) & (np.sign(target) != sign[support])
            if not wrong_newcomers.any():
                break
            support = support[~wrong_newcomers]
        if support.size == 0:
            return w, gram @ w + l2 * w - xty
        current = w[support]
        if np.array_equal(np.sign(target), sign[support]):
            w[support] = target
            solved_support = True
            continue
        w[support] = _line_search(system, xty[support], l1, current, target)
        solved_support = False
    raise RuntimeError("The elastic-net active-set solver did not converge; this is a bug, not the data's fault.")


def _solve_support(
    gram: np.ndarray, xty: np.ndarray, l1: float, l2: float, support: np.ndarray, sign: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The minimizer on ``support`` with the given signs, and the system matrix ``gram_SS + l2 I``."""
    system = gram.take(support, axis=0).take(support, axis=1)
    system.flat[:: support.size + 1] += l2
    rhs = xty[support] - l1 * sign
    try:
        return np.linalg.solve(system, rhs), system
    except np.linalg.LinAlgError:
        # A singular support (collinear columns without ridge): any minimizer on it will do.
        return np.linalg.lstsq(system, rhs, rcond=None)[0], system


def _line_search(system: np.ndarray, rhs: np.ndarray, l1: float, current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The lowest-objective point among the zero crossings on [current, target] and target itself;
    the coordinates that cross at the chosen point are set to exactly zero. ``system`` and ``rhs`` are
    the support's ``gram_SS + l2 I`` and ``xty_S``."""
    step = target - current
    crossing = (current != 0) & (np.sign(target) != np.sign(current))
    ts = np.full(current.shape, np.inf)
    ts[crossing] = current[crossing] / (current[crossing] - target[crossing])
    candidates = np.unique(np.append(ts[crossing], 1.0))
    points = current[None, :] + candidates[:, None] * step[None, :]
    for k, t in enumerate(candidates):
        points[k, ts == t] = 0.0
    objective = np.sum((0.5 * (points @ system) - rhs) * points, axis=1) + l1 * np.abs(points).sum(axis=1)
    return points[int(np.argmin(objective))]


# --------------------------------------------------------------------------------------------------
# L2 logistic regression
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogisticPath:
    """Solutions along the Cs, in the order given.

    ``coefs`` (Cs, outputs, features) and ``intercepts`` (Cs, outputs): one output (the logit of
    ``classes[1]``) for two classes, one per class otherwise, as scikit-learn's coef_ / intercept_.
    Multinomial intercepts are reported summing to zero (the softmax does not change when a constant
    is added to all of them). ``n_iter`` counts the Newton steps taken at each C.
    """

    Cs: np.ndarray
    classes: np.ndarray
    coefs: np.ndarray
    intercepts: np.ndarray
    n_iter: np.ndarray


@dataclass(frozen=True)
class LogisticCVResult:
    """Cross-validated L2 logistic regression, laid out as LogisticRegressionCV's attributes.

    ``scores`` (Cs, folds): the held-out score of each C in each fold ("accuracy" or "neg_log_loss",
    greater is better); ``mean_scores`` (Cs,). ``C`` is the chosen value (``index`` into ``Cs``);
    ``coef`` (outputs, features) and ``intercept`` (outputs,) the refit on all rows at that C.
    """

    Cs: np.ndarray
    classes: np.ndarray
    scoring: Scoring
    scores: np.ndarray
    mean_scores: np.ndarray
    index: int
    C: float
    coef: np.ndarray
    intercept: np.ndarray
    selection: Selection


def logistic_l2_path(
    X: np.ndarray,
    y: np.ndarray,
    Cs: Sequence[float] | np.ndarray | int = 10,
    *,
    fit_intercept: bool = True,
    classes: np.ndarray | None = None,
    max_iter: int = 100,
) -> LogisticPath:
    """L2 logistic regression at each C (in the order given), each warm-started from the previous.

    Minimizes scikit-learn's ``C * sum_i cross_entropy_i + 1/2 ||W||^2`` (intercepts unpenalized), i.e.
    the project's mean cross-entropy with ``l2 = 1 / (n * C)``. ``Cs`` an int means
    ``np.logspace(-4, 4, Cs)``. ``classes`` fixes the label set (cross-validation passes all classes,
    so a fold missing one still has its output), default ``np.unique(y)``.
    """
    X = _check_matrix(X)
    labels = np.asarray(y)
    if labels.shape != (X.shape[0],):
        raise ValueError(f"Logistic regression needs one label per row; got {labels.shape} for {X.shape[0]} rows.")
    grid = _check_cs(Cs)
    classes = np.unique(labels) if classes is None else np.asarray(classes)
    if classes.shape[0] < 2:
        raise ValueError(f"Logistic regression needs at least two classes; the data has only {classes.tolist()}.")
    encoded = np.searchsorted(classes, labels)
    if np.any(encoded >= classes.shape[0]) or np.any(classes[np.minimum(encoded, classes.shape[0] - 1)] != labels):
        raise ValueError("Some labels are not among the classes given.")
    design = np.hstack([X, np.ones((X.shape[0], 1))]) if fit_intercept else X
    outputs = 1 if classes.shape[0] == 2 else classes.shape[0]
    theta = np.zeros((design.shape[1], outputs))
    coefs = np.empty((grid.shape[0], outputs, X.shape[1]))
    intercepts = np.zeros((grid.shape[0], outputs))
    n_iter = np.empty(grid.shape[0], dtype=np.int64)
    for k, C in enumerate(grid):
        theta, n_iter[k] = _newton_logistic(design, encoded, float(C), theta, fit_intercept, max_iter)
        coefs[k] = theta[: X.shape[1]].T
        if fit_intercept:
            intercepts[k] = theta[-1]
    return LogisticPath(Cs=grid, classes=classes, coefs=coefs, intercepts=intercepts, n_iter=n_iter)


def logistic_cv(
    X: np.ndarray,
    y: np.ndarray,
    Cs: Sequence[float] | np.ndarray | int = 10,
    folds: FoldPairs | None = None,
    scoring: Scoring = "accuracy",
    *,
    fit_intercept: bool = True,
    rule: Rule = "min",
    max_iter: int = 100,
) -> LogisticCVResult:
    """Cross-validated L2 logistic regression, equal to ``LogisticRegressionCV(Cs, cv=StratifiedKFold(5),
    scoring=scoring, l1_ratios=(0,))``.

    ``folds`` None means ``stratified_kfold(y, 5)``. For each fold a path over the Cs is solved on the
    training rows (with every class's output) and scored on the held-out rows. ``rule="min"`` takes the
    best mean score, ties to the first C in the order given (scikit-learn's argmax; with the default
    ascending grid that is the strongest penalty); ``rule="1se"`` applies glmnet's rule with penalty
    ``1/C``. The refit solves the chosen C on all rows.
    """
    X = _check_matrix(X)
    labels = np.asarray(y)
    grid = _check_cs(Cs)
    if scoring not in ("accuracy", "neg_log_loss"):
        raise ValueError(f"Unknown scoring {scoring!r}; use 'accuracy' or 'neg_log_loss'.")
    classes = np.unique(labels)
    pairs = stratified_kfold(labels, DEFAULT_FOLDS) if folds is None else _check_fold_pairs(folds, X.shape[0])
    scores = np.empty((grid.shape[0], len(pairs)))
    for fold, (train, test) in enumerate(pairs):
        path = logistic_l2_path(
            X[train], labels[train], grid, fit_intercept=fit_intercept, classes=classes, max_iter=max_iter
        )
        for k in range(grid.shape[0]):
            logits = X[test] @ path.coefs[k].T + path.intercepts[k]
            scores[k, fold] = _score(logits, labels[test], classes, scoring)
    mean_scores = scores.mean(axis=1)
    selection = select(mean_scores, scores, 1.0 / grid, rule, greater_is_better=True)
    refit = logistic_l2_path(
        X, labels, grid[: selection.index + 1], fit_intercept=fit_intercept, classes=classes, max_iter=max_iter
    )
    return LogisticCVResult(
        Cs=grid,
        classes=classes,
        scoring=scoring,
        scores=scores,
        mean_scores=mean_scores,
        index=selection.index,
        C=float(grid[selection.index]),
        coef=refit.coefs[-1],
        intercept=refit.intercepts[-1],
        selection=selection,
    )


def _newton_logistic(
    design: np.ndarray, encoded: np.ndarray, C: float, start: np.ndarray, fit_intercept: bool, max_iter: int
) -> tuple[np.ndarray, int]:
    """Minimize ``sum_i loss_i + 1/(2C) ||W||^2`` (scikit-learn's objective divided by C) by Newton
    steps with Armijo backtracking, from ``start`` (rows: features then the intercept; columns: outputs).

    For the multinomial the objective gets ``1/2 (sum of intercepts)^2`` added: the softmax is blind to
    a common shift of the intercepts, so this term only picks the representative whose intercepts sum
    to zero (its gradient vanishes there) and makes the Hessian invertible.
    """
    n, q = design.shape
    outputs = start.shape[1]
    penalty = np.full(q, 1.0 / C)
    if fit_intercept:
        penalty[-1] = 0.0
    targets = (encoded == 1).astype(np.float64)[:, None] if outputs == 1 else np.eye(outputs)[encoded]

    def objective(theta: np.ndarray) -> float:
        logits = design @ theta
        if outputs == 1:
            data = np.sum(np.logaddexp(0.0, logits[:, 0]) - targets[:, 0] * logits[:, 0])
        else:
            top = logits.max(axis=1, keepdims=True)
            log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
            data = np.sum(log_norm - logits[np.arange(n), encoded])
        value = float(data) + 0.5 * float(np.sum(penalty[:, None] * theta**2))
        if outputs > 1 and fit_intercept:
            value += 0.5 * float(theta[-1].sum()) ** 2
        return value

    theta = start.copy()
    value = objective(theta)
    for iteration in range(1, max_iter + 1):
        logits = design @ theta
        if outputs == 1:
            prob = 0.5 * (1.0 + np.tanh(0.5 * logits))  # the sigmoid, without overflow
            gradient = design.T @ (prob - targets) + penalty[:, None] * theta
            hessian = (design * (prob * (1.0 - prob))).T @ design + np.diag(penalty)
        else:
            prob = np.exp(logits - logits.max(axis=1, keepdims=True))
            prob /= prob.sum(axis=1, keepdims=True)
            gradient = design.T @ (prob - targets) + penalty[:, None] * theta
            blocks = np.empty((q, outputs, q, outputs))
            for k in range(outputs):
                for m in range(k, outputs):
                    weight = prob[:, k] * ((k == m) - prob[:, m])
                    block = (design * weight[:, None]).T @ design
                    blocks[:, k, :, m] = block
                    blocks[:, m, :, k] = block
            for k in range(outputs):
                blocks[np.arange(q), k, np.arange(q), k] += penalty
            if fit_intercept:
                gradient[-1] += theta[-1].sum()
                blocks[-1, :, -1, :] += 1.0
            hessian = blocks.reshape(q * outputs, q * outputs)
        direction = -np.linalg.solve(hessian, gradient.reshape(-1)).reshape(q, outputs)
        slope = float(np.sum(gradient * direction))
        # The Newton decrement (-slope) is about twice the distance to the optimal objective. Once it is
        # below what float64 resolves in the objective, a line search only sees rounding: take full
        # steps (Newton converges quadratically there) and stop when the step is negligible.
        if -slope <= 1e-20 * max(1.0, abs(value)):
            return theta, iteration
        t = 1.0
        candidate = theta + direction
        if -slope > 1e-12 * max(1.0, abs(value)):
            candidate_value = objective(candidate)
            while candidate_value > value + 1e-4 * t * slope:
                t *= 0.5
                if t < 1e-10:
                    raise RuntimeError(f"Newton's line search for logistic regression failed at C={C}; a bug.")
                candidate = theta + t * direction
                candidate_value = objective(candidate)
        else:
            candidate_value = objective(candidate)
        theta, value = candidate, candidate_value
        if np.abs(direction).max() <= 1e-9 * (1.0 + np.abs(theta).max()):
            return theta, iteration
    raise RuntimeError(f"Newton's method for logistic regression did not converge in {max_iter} steps at C={C}.")


def _score(logits: np.ndarray, labels: np.ndarray, classes: np.ndarray, scoring: Scoring) -> float:
    if logits.shape[1] == 1:
        if scoring == "accuracy":
            # scikit-learn predicts classes[1] when the decision function is > 0 (not >=).
            return float(np.mean(classes[(logits[:, 0] > 0).astype(np.int64)] == labels))
        positive = 0.5 * (1.0 + np.tanh(0.5 * logits[:, 0]))
        prob = np.stack([1.0 - positive, positive], axis=1)
    else:
        if scoring == "accuracy":
            return float(np.mean(classes[np.argmax(logits, axis=1)] == labels))
        prob = np.exp(logits - logits.max(axis=1, keepdims=True))
        prob /= prob.sum(axis=1, keepdims=True)
    # log_loss as scikit-learn computes it: probabilities clipped to [eps, 1 - eps].
    eps = np.finfo(np.float64).eps
    true_prob = np.clip(prob[np.arange(labels.shape[0]), np.searchsorted(classes, labels)], eps, 1 - eps)
    return float(np.mean(np.log(true_prob)))


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def _check_matrix(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"Features must be a non-empty two-dimensional array; got shape {X.shape}.")
    if not np.isfinite(X).all():
        raise ValueError("Features contain NaN or infinite values; impute or drop them first.")
    return X


def _check_xy(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = _check_matrix(X)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (X.shape[0],):
        raise ValueError(f"The target must have one value per row; got shape {y.shape} for {X.shape[0]} rows.")
    if not np.isfinite(y).all():
        raise ValueError("The target contains NaN or infinite values.")
    return X, y


def _check_l1_ratio(l1_ratio: float) -> None:
    if not 0.0 <= l1_ratio <= 1.0:
        raise ValueError(f"l1_ratio must lie in [0, 1]; got {l1_ratio}.")


def _check_alphas(alphas: Sequence[float] | np.ndarray) -> np.ndarray:
    grid = np.asarray(alphas, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.isfinite(grid).all() or (grid < 0).any():
        raise ValueError("alphas must be a non-empty list of finite numbers >= 0.")
    return np.sort(grid)[::-1].copy()


def _check_cs(Cs: Sequence[float] | np.ndarray | int) -> np.ndarray:
    if isinstance(Cs, int | np.integer):
        if Cs < 1:
            raise ValueError(f"Cs as a count must be >= 1; got {Cs}.")
        return np.logspace(-4, 4, int(Cs))
    grid = np.asarray(Cs, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.isfinite(grid).all() or (grid <= 0).any():
        raise ValueError("Cs must be a non-empty list of finite numbers > 0.")
    return grid


def _check_fold_pairs(folds: FoldPairs, n: int) -> FoldPairs:
    if len(folds) < 2:
        raise ValueError(f"Cross-validation needs at least 2 folds; got {len(folds)}.")
    checked = []
    for train, test in folds:
        train, test = np.asarray(train, dtype=np.int64), np.asarray(test, dtype=np.int64)
        if train.size == 0 or test.size == 0 or train.min() < 0 or test.min() < 0 or max(train.max(), test.max()) >= n:
            raise ValueError(f"Every fold needs non-empty train and test rows, all within the {n} rows.")
        checked.append((train, test))
    return checked
