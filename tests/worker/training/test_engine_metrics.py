"""The result's metrics are scikit-learn's, on the same predictions: the engine's outputs for each split
are recomputed from the returned weights and fed to scikit-learn's functions. And class_weight="balanced"
is scikit-learn's: trained to convergence, the coefficients equal LogisticRegression's."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
)

from worker.training import ArrayDataset, NullReporter, TrainConfig, TrainOutcome, train
from worker.training.config import ModelConfig, OptimizerConfig, RegularizationConfig, TrainingConfig
from worker.training.data import Split
from worker.training.metrics import probabilities
from worker.training.networks import build_network


def blobs(n_classes: int, n: int = 240, seed: int = 0, weights: tuple[float, ...] | None = None) -> ArrayDataset:
    """Overlapping Gaussian classes (so that every metric is strictly between its bounds)."""
    rng = np.random.default_rng(seed)
    shares = np.asarray(weights or [1.0] * n_classes) / sum(weights or [1.0] * n_classes)
    y = rng.choice(n_classes, size=n, p=shares)
    centres = rng.standard_normal((n_classes, 4)) * 1.2
    X = centres[y] + rng.standard_normal((n, 4))
    labels = np.array(["ant", "bee", "cat", "dog"])[y]
    return ArrayDataset(X, labels, tuple(f"x{i}" for i in range(4)))


def outputs(outcome: TrainOutcome, config: TrainConfig, split: Split) -> np.ndarray:
    prepared = outcome.prepared
    n_features = int(np.prod(split.X.shape[1:]))
    net = build_network(config.model, n_features, prepared.n_outputs, prepared.image_shape)
    net.load_state_dict(outcome.state)
    net = net.to(split.X.dtype).eval()
    with torch.no_grad():
        return net(split.X.cpu()).double().numpy()


def run(task: str, data: ArrayDataset, **training: Any) -> tuple[TrainOutcome, TrainConfig]:
    config = TrainConfig(
        task=task,  # type: ignore[arg-type]
        model=ModelConfig(type="mlp", hidden_layers=(8,)),
        optimizer=OptimizerConfig(type="adam", lr=0.01),
        training=TrainingConfig(epochs=3, validation_fraction=0.25, test_fraction=0.25, **training),
    )
    return train(config, data, NullReporter()), config


@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_classification_metrics_equal_scikit_learns(n_classes: int) -> None:
    outcome, config = run("classification", blobs(n_classes, weights=(3.0, 1.0, 1.0, 2.0)[:n_classes]))
    result = outcome.result
    for name, metrics in (("train", result.train), ("validation", result.validation), ("test", result.test)):
        assert metrics is not None
        split = getattr(outcome.prepared, name)
        y_true = split.y.numpy()
        proba = probabilities(outputs(outcome, config, split))
        y_pred = proba.argmax(axis=1)
        labels = list(range(n_classes))
        assert metrics.accuracy == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
        assert metrics.balanced_accuracy == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-12)
        assert metrics.f1_macro == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-12)
        assert metrics.log_loss == pytest.approx(log_loss(y_true, proba, labels=labels), abs=1e-9)
        expected_auc = (
            roc_auc_score(y_true, proba[:, 1])
            if n_classes == 2
            else roc_auc_score(y_true, proba, multi_class="ovr", average="macro")
        )
        assert metrics.roc_auc == pytest.approx(expected_auc, abs=1e-12)
        assert metrics.confusion_matrix == confusion_matrix(y_true, y_pred, labels=labels).tolist()
        # Unweighted, the data loss is the same mean cross-entropy (computed on the device in float32).
        assert metrics.data_loss == pytest.approx(metrics.log_loss, rel=1e-5)
        assert metrics.balanced_accuracy is not None and 0 < metrics.balanced_accuracy < 1
        assert metrics.f1_macro is not None and 0 < metrics.f1_macro < 1
    stored = result.to_json()
    assert stored["validation"]["confusion_matrix"] == result.validation.confusion_matrix  # type: ignore[union-attr]
    assert "mae" not in stored["validation"] and "r2" not in stored["validation"]


def test_the_confusion_matrix_follows_the_jobs_class_order() -> None:
    outcome, _ = run("classification", blobs(3))
    assert outcome.prepared.class_labels == ("ant", "bee", "cat")
    matrix = np.asarray(outcome.result.test.confusion_matrix)  # type: ignore[union-attr]
    counts = np.bincount(outcome.prepared.test.y.numpy(), minlength=3)  # type: ignore[union-attr]
    np.testing.assert_array_equal(matrix.sum(axis=1), counts)


def test_roc_auc_is_absent_when_a_split_lacks_a_class() -> None:
    data = blobs(3, n=200)
    # A class of two rows: stratified, the 25% validation and test splits round its share to none.
    y = data.y.copy()
    y[np.flatnonzero(y == "cat")[2:]] = "bee"
    outcome, _ = run("classification", ArrayDataset(data.X, y, data.feature_names))
    validation = outcome.result.validation
    assert validation is not None and validation.roc_auc is None
    assert "roc_auc" not in outcome.result.to_json()["validation"]
    assert outcome.result.train.roc_auc is not None


def test_regression_metrics_equal_scikit_learns() -> None:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 3))
    y = 50 + X @ np.array([3.0, -2.0, 0.5]) + rng.standard_normal(200)
    outcome, config = run("regression", ArrayDataset(X, y, ("a", "b", "c")))
    for name in ("train", "validation", "test"):
        metrics, split = getattr(outcome.result, name), getattr(outcome.prepared, name)
        predicted = outputs(outcome, config, split).ravel()
        assert metrics.mae == pytest.approx(mean_absolute_error(split.y.numpy(), predicted), rel=1e-6)
        assert metrics.r2 == pytest.approx(r2_score(split.y.numpy(), predicted), rel=1e-5, abs=1e-6)
        assert metrics.accuracy is None and metrics.confusion_matrix is None
    assert set(outcome.result.to_json()["test"]) == {"data_loss", "r2", "rmse", "mae"}


@pytest.mark.parametrize("n_classes", [2, 3])
def test_balanced_class_weight_equals_logistic_regression(n_classes: int) -> None:
    """Full batch, float64, l2 only, to convergence: the weighted objective sum_i w_i loss_i / n +
    (l2/2)||W||^2 is scikit-learn's LogisticRegression(class_weight="balanced", C=1/(n*l2)), one logit
    for two classes and softmax for more."""
    data = blobs(n_classes, n=200, seed=3, weights=(5.0, 1.0, 2.0)[:n_classes])
    n, l2 = len(data.y), 0.02
    X_std = (data.X - data.X.mean(axis=0)) / data.X.std(axis=0)
    oracle = LogisticRegression(class_weight="balanced", C=1 / (n * l2), tol=1e-12, max_iter=100_000).fit(X_std, data.y)
    config = TrainConfig(
        task="classification",
        model=ModelConfig(type="linear"),
        regularization=RegularizationConfig(l2=l2),
        optimizer=OptimizerConfig(type="sgd", lr=0.5, momentum=0.9),
        training=TrainingConfig(
            epochs=3000, batch_size=None, validation_fraction=0.0, precision="float64", class_weight="balanced"
        ),
    )
    state = train(config, data, NullReporter()).state
    np.testing.assert_allclose(state["linear.weight"].numpy(), oracle.coef_, atol=1e-5)
    # Softmax intercepts are defined up to a common constant (they are not penalized): compare centred.
    bias, intercept = state["linear.bias"].numpy(), oracle.intercept_
    if n_classes > 2:
        bias, intercept = bias - bias.mean(), intercept - intercept.mean()
    np.testing.assert_allclose(bias, intercept, atol=1e-5)
    # Unweighted, the same problem has other coefficients: the weights did something.
    plain = LogisticRegression(C=1 / (n * l2)).fit(X_std, data.y)
    assert np.abs(plain.coef_ - oracle.coef_).max() > 1e-2


def test_class_weight_is_refused_for_regression() -> None:
    config = TrainConfig(task="regression", training=TrainingConfig(epochs=1, class_weight="balanced"))
    data = ArrayDataset(np.zeros((10, 2)), np.arange(10.0), ("a", "b"))
    with pytest.raises(ValueError, match="classification only"):
        train(config, data, NullReporter())
