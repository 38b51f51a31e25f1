"""Regularization paths: worker/training/paths.py against scikit-learn, in one run.

Prints three things:
  1. the alpha grid against scikit-learn's ``_alpha_grid`` (largest relative difference);
  2. a 100-alpha elastic-net path against ``sklearn.linear_model.enet_path`` run with tol=1e-12
     (largest difference over largest |coefficient|, and whether the exact zeros agree);
  3. the cross-validation time: ``elastic_net_cv`` against ``ElasticNetCV(l1_ratio=[0.2, 0.5, 0.9],
     cv=KFold(5))`` with scikit-learn's defaults (tol=1e-4, 100 alphas), on n=5,000 rows and p=200
     features in 20 groups of 10 correlated columns; the two are interleaved over repeats (the machine is
     shared) and the medians compared. Target: ratio <= 1.0.

    python -m bench.paths [--repeats 5] [--blas-threads N]

``--blas-threads`` caps OpenBLAS/OpenMP threads for BOTH libraries (set before numpy loads). On a busy
2-core machine multi-threaded BLAS on 100x100 systems spends its time handing work between threads;
the default leaves the environment as it is.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROWS, FEATURES, GROUPS, NONZERO = 5_000, 200, 20, 20
L1_RATIOS = (0.2, 0.5, 0.9)
SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--blas-threads", type=int, default=None)
    args = parser.parse_args()
    if args.blas_threads is not None:
        if "numpy" in sys.modules:
            raise SystemExit("--blas-threads must be set before numpy is imported")
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.blas_threads)

    import numpy as np
    from sklearn.linear_model import ElasticNetCV
    from sklearn.linear_model import enet_path as sklearn_enet_path
    from sklearn.linear_model._coordinate_descent import _alpha_grid
    from sklearn.model_selection import KFold

    from worker.training.folds import kfold
    from worker.training.paths import alpha_grid, elastic_net_cv, enet_path

    rng = np.random.default_rng(SEED)
    latent = rng.standard_normal((ROWS, GROUPS))
    X = np.repeat(latent, FEATURES // GROUPS, axis=1) + 0.5 * rng.standard_normal((ROWS, FEATURES))
    truth = np.zeros(FEATURES)
    truth[rng.choice(FEATURES, NONZERO, replace=False)] = rng.normal(0, 2, NONZERO)
    y = X @ truth + 3.0 * rng.standard_normal(ROWS)
    print(f"data: {ROWS} x {FEATURES}, {GROUPS} groups of correlated columns, {NONZERO} true nonzeros")

    worst = max(float(np.max(np.abs(alpha_grid(X, y, r) / _alpha_grid(X, y, l1_ratio=r) - 1))) for r in L1_RATIOS)
    print(f"alpha grid vs sklearn _alpha_grid: max relative difference {worst:.1e}")

    for ratio in L1_RATIOS:
        ours = enet_path(X, y, ratio)
        _, theirs, _ = sklearn_enet_path(
            X - X.mean(axis=0), y - y.mean(), l1_ratio=ratio, alphas=ours.alphas, tol=1e-12, max_iter=100_000
        )
        difference = float(np.abs(ours.coefs - theirs).max() / np.abs(theirs).max())
        zeros = "same exact zeros" if np.array_equal(ours.coefs == 0, theirs == 0) else "ZEROS DIFFER"
        print(
            f"100-alpha path l1_ratio={ratio}: max|ours - enet_path(tol=1e-12)| / max|coef| = {difference:.1e}, {zeros}"
        )

    folds = kfold(ROWS, 5)
    ours_seconds, sklearn_seconds = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours_cv = elastic_net_cv(X, y, L1_RATIOS, folds=folds, n_alphas=100)
        ours_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        model = ElasticNetCV(l1_ratio=list(L1_RATIOS), alphas=100, cv=KFold(5)).fit(X, y)
        sklearn_seconds.append(time.perf_counter() - start)
    ours_median, sklearn_median = statistics.median(ours_seconds), statistics.median(sklearn_seconds)
    print(
        f"CV 5 folds x {len(L1_RATIOS)} l1_ratios x 100 alphas: ours {ours_median:.3f} s, "
        f"ElasticNetCV {sklearn_median:.3f} s, ratio {ours_median / sklearn_median:.2f} (target <= 1.0; "
        f"medians of {args.repeats}, blas threads {os.environ.get('OPENBLAS_NUM_THREADS', 'default')})"
    )
    agree = ours_cv.alpha == model.alpha_ and ours_cv.l1_ratio == model.l1_ratio_
    print(
        f"chosen: ours alpha={ours_cv.alpha:.6g} l1_ratio={ours_cv.l1_ratio}; sklearn alpha={model.alpha_:.6g} "
        f"l1_ratio={model.l1_ratio_} ({'same' if agree else 'DIFFERENT'})"
    )


if __name__ == "__main__":
    main()
