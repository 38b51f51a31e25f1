"""Studies through HTTP with a real worker and scheduler, on both stacks: an elastic-net CV study on
correlated data makes ElasticNetCV's choice with its per-fold MSE, and a paired comparison of
regularizers on an MLP returns scores with standard errors and a refit job that predicts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import ElasticNetCV, LogisticRegression, LogisticRegressionCV
from sklearn.metrics import log_loss
from sklearn.model_selection import KFold, StratifiedKFold

from tests.support.files import csv_bytes
from tests.support.plots import Svg
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

L1_RATIOS = [0.5, 1.0]


@pytest.fixture(scope="module")
def scheduled(stack: Stack) -> Stack:
    """The scheduler makes refit jobs."""
    if "scheduler" not in stack.processes:
        stack.start("scheduler", "scheduler")
    return stack


def correlated(n: int = 120, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Two groups of three strongly correlated features, two noise features; y depends on the groups."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 2))
    X = np.column_stack(
        [
            base[:, [0]] + 0.1 * rng.normal(size=(n, 3)),
            base[:, [1]] + 0.1 * rng.normal(size=(n, 3)),
            rng.normal(size=(n, 2)),
        ]
    )
    y = 3 * base[:, 0] - 2 * base[:, 1] + rng.normal(size=n)
    # Rounded, so that the CSV holds exactly the numbers scikit-learn gets.
    return np.round(X, 6), np.round(y, 6)


def wait_for_study(stack: Stack, study_id: str, timeout: float = 180) -> dict[str, Any]:
    from tests.support.servers import wait_until

    def finished() -> dict[str, Any] | None:
        study = stack.client.get(f"/v1/studies/{study_id}").json()
        return study if study["status"] in ("succeeded", "failed", "canceled") else None

    try:
        return dict(wait_until(finished, timeout=timeout, interval=0.2, what=f"study {study_id} to finish"))
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from exc


def test_an_elastic_net_cv_study_makes_elastic_net_cvs_choice(scheduled: Stack) -> None:
    stack = scheduled
    X, y = correlated()
    header = [f"x{i}" for i in range(X.shape[1])] + ["y"]
    content = csv_bytes(header, [[*map(repr, map(float, row)), repr(float(t))] for row, t in zip(X, y, strict=True)])
    upload = stack.client.post(
        "/v1/datasets", data={"name": "correlated", "target": "y"}, files={"file": ("c.csv", content)}
    )
    assert upload.status_code == 201, upload.text
    response = stack.client.post(
        "/v1/studies",
        json={
            "job": {
                "dataset": "correlated@latest",
                "model": {"type": "linear"},
                "training": {"validation_fraction": 0.0, "standardize": False},
            },
            "search": {
                "regularization.elastic_net.alpha": {"path": {"n": 30, "eps": 0.001}},
                "regularization.elastic_net.l1_ratio": {"values": L1_RATIOS},
            },
            "cv": {"folds": 5},
            "select": {"metric": "mse", "rule": "min"},
        },
    )
    assert response.status_code == 201, response.text
    study = wait_for_study(stack, response.json()["id"])
    assert study["status"] == "succeeded", (study["error"], stack.logs())

    oracle = ElasticNetCV(l1_ratio=L1_RATIOS, alphas=30, eps=1e-3, cv=KFold(5), tol=1e-12, max_iter=100_000).fit(X, y)
    chosen = study["selected"]["params"]
    assert chosen["regularization.elastic_net.l1_ratio"] == oracle.l1_ratio_
    assert chosen["regularization.elastic_net.alpha"] == pytest.approx(oracle.alpha_, rel=1e-9)

    # glmnet's 1-SE member lies on the best member's path (its l1_ratio), at a penalty no smaller.
    one_se, best = study["one_se"]["params"], study["best"]["params"]
    assert one_se["regularization.elastic_net.l1_ratio"] == best["regularization.elastic_net.l1_ratio"]
    assert one_se["regularization.elastic_net.alpha"] >= best["regularization.elastic_net.alpha"]
    assert study["one_se"]["mean"] <= study["best"]["mean"] + study["best"]["standard_error"]

    members = stack.client.get(f"/v1/studies/{study['id']}/members", params={"limit": 100}).json()["items"]
    assert len(members) == 60
    for member in members:
        ratio = L1_RATIOS.index(member["params"]["regularization.elastic_net.l1_ratio"])
        column = int(np.argmin(np.abs(oracle.alphas_[ratio] - member["params"]["regularization.elastic_net.alpha"])))
        assert member["params"]["regularization.elastic_net.alpha"] == pytest.approx(
            oracle.alphas_[ratio][column], rel=1e-9
        )
        np.testing.assert_allclose(member["fold_scores"], oracle.mse_path_[ratio][column], rtol=1e-6)
        assert member["standard_error"] == pytest.approx(np.std(member["fold_scores"], ddof=1) / np.sqrt(5), rel=1e-9)
    path = stack.client.get(f"/v1/studies/{study['id']}/path").json()
    assert path["features"] == header[:-1]
    assert [curve["l1_ratio"] for curve in path["paths"]] == L1_RATIOS
    lasso = path["paths"][1]
    assert len(lasso["alphas"]) == 30 and len(lasso["coefficients"]) == X.shape[1]
    # At the largest penalty every coefficient is exactly zero.
    assert all(row[0] == 0.0 for row in lasso["coefficients"])
    # The API's plots of what the worker recorded: a CV curve per l1_ratio with ElasticNetCV's alpha marked,
    # and a path panel per l1_ratio with a line per feature.
    curve = stack.client.get(f"/v1/studies/{study['id']}/plots/cv_curve.svg")
    assert curve.status_code == 200 and curve.headers["content-type"] == "image/svg+xml", curve.text
    drawn = Svg.parse(curve.content)
    assert drawn.series() == [f"series-l1_ratio-{ratio}" for ratio in L1_RATIOS]
    assert any(text.startswith(f"min: alpha = {oracle.alpha_:.3g}, score ") for text in drawn.texts())
    paths = Svg.parse(stack.client.get(f"/v1/studies/{study['id']}/plots/paths.svg").content)
    assert len(paths.series()) == len(L1_RATIOS) * X.shape[1]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_an_l2_logistic_study_makes_logistic_regression_cvs_choice(stack: Stack) -> None:
    """Linear classification members with only l2 are solved to their optimum, so with scikit-learn's C
    given as l2 = 1 / (n_train * C) (iris: 150 rows, 5 stratified folds of 120 training rows each) the
    study scores every fold as LogisticRegressionCV does and picks the same C."""
    Cs = np.logspace(-4, 4, 10)
    n_train = 120
    response = stack.client.post(
        "/v1/studies",
        json={
            "job": {
                "dataset": "builtin:iris",
                "model": {"type": "linear"},
                "training": {"validation_fraction": 0.0, "standardize": False},
            },
            "search": {"regularization.l2": {"values": [1.0 / (n_train * C) for C in Cs]}},
            "cv": {"folds": 5},
            "select": {"metric": "accuracy", "rule": "min"},
        },
    )
    assert response.status_code == 201, response.text
    study = wait_for_study(stack, response.json()["id"])
    assert study["status"] == "succeeded", (study["error"], stack.logs())

    X, y = load_iris(return_X_y=True)
    oracle = LogisticRegressionCV(
        Cs=Cs,
        cv=StratifiedKFold(5),
        scoring="accuracy",
        l1_ratios=(0,),
        use_legacy_attributes=True,
        solver="newton-cholesky",
        tol=1e-12,
        max_iter=1000,
    ).fit(X, y)
    chosen = 1.0 / (n_train * study["selected"]["params"]["regularization.l2"])
    assert chosen == pytest.approx(oracle.C_[0], rel=1e-9)
    their_scores = next(iter(oracle.scores_.values()))[:, :, 0].T  # (Cs, folds)
    members = stack.client.get(f"/v1/studies/{study['id']}/members", params={"limit": 100}).json()["items"]
    assert len(members) == len(Cs)
    for member, scores in zip(members, their_scores, strict=True):
        np.testing.assert_allclose(member["fold_scores"], scores, rtol=0, atol=1e-12)
    # The held-out log loss of each fold equals scikit-learn's LogisticRegression solved at that C.
    folds = list(StratifiedKFold(5).split(X, y))
    for member, C in zip(members[::3], Cs[::3], strict=True):
        for fold, (train, held_out) in enumerate(folds):
            fitted = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X[train], y[train])
            expected = log_loss(y[held_out], fitted.predict_proba(X[held_out]), labels=[0, 1, 2])
            assert member["final_scores"][fold]["log_loss"] == pytest.approx(expected, rel=1e-6)


def test_a_paired_comparison_of_regularizers_refits_the_choice(scheduled: Stack) -> None:
    stack = scheduled
    variants = {
        "none": {},
        "l1": {"regularization": {"l1": 0.001}},
        "l2": {"regularization": {"l2": 0.01}},
        "elastic_net": {"regularization": {"elastic_net": {"alpha": 0.002, "l1_ratio": 0.5}}},
        "dropout": {"model": {"dropout": 0.2}},
    }
    response = stack.client.post(
        "/v1/studies",
        json={
            "name": "which regularizer",
            "job": {
                "dataset": "builtin:iris",
                "model": {"type": "mlp", "hidden_layers": [16]},
                "training": {"epochs": 15, "batch_size": 16, "early_stopping": None, "test_fraction": 0.2},
            },
            "variants": variants,
            "cv": {"folds": 3},
            "select": {"metric": "accuracy", "rule": "min"},
            "refit": True,
        },
    )
    assert response.status_code == 201, response.text
    study = wait_for_study(stack, response.json()["id"])
    assert study["status"] == "succeeded", (study["error"], stack.logs())
    members = stack.client.get(f"/v1/studies/{study['id']}/members", params={"sort": "score"}).json()["items"]
    assert {m["variant"] for m in members} == set(variants)
    for member in members:
        assert len(member["fold_scores"]) == 3 and all(0 <= s <= 1 for s in member["fold_scores"])
        assert member["mean"] == pytest.approx(np.mean(member["fold_scores"]))
        assert member["standard_error"] is not None and member["epochs"] == 15
    assert [m["mean"] for m in members] == sorted((m["mean"] for m in members), reverse=True)
    assert study["selected"]["position"] == study["best"]["position"]
    assert study["test"] is not None and "accuracy" in study["test"]

    def refit() -> str | None:
        return stack.client.get(f"/v1/studies/{study['id']}").json()["refit_job_id"]

    from tests.support.servers import wait_until

    refit_id = wait_until(refit, timeout=60, interval=0.2, what="the refit job")
    job = stack.wait_for(refit_id)
    assert job["status"] == "succeeded", job["error"]
    assert job["spec"]["training"]["validation_fraction"] == 0.0
    chosen = next(m for m in members if m["position"] == study["selected"]["position"])
    assert job["spec"]["model"] == chosen["spec"]["model"]
    prediction = stack.client.post(f"/v1/jobs/{refit_id}/predict", json={"rows": [[5.1, 3.5, 1.4, 0.2]]})
    assert prediction.status_code == 200 and prediction.json()["predictions"] == [0]
