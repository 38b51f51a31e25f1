"""The training loop as a user sees it: the loss drops, runs repeat exactly, early stopping keeps the
best epoch, divergence and cancellation end a run with the documented exceptions."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.metrics import r2_score
from torch.nn import functional as F

from worker.training import Canceled, Diverged, EpochReport, NullReporter, TrainConfig, TrainOutcome, train
from worker.training.config import (
    EarlyStoppingConfig,
    ModelConfig,
    OptimizerConfig,
    RegularizationConfig,
    TrainingConfig,
)
from worker.training.data import ArrayDataset, split_indices
from worker.training.networks import build_network


def wine() -> ArrayDataset:
    raw = load_wine()
    return ArrayDataset(raw.data, raw.target, tuple(raw.feature_names))


def diabetes(scale: float = 1.0) -> ArrayDataset:
    raw = load_diabetes()
    return ArrayDataset(raw.data * scale, raw.target, tuple(raw.feature_names))


def breast_cancer() -> ArrayDataset:
    raw = load_breast_cancer()
    return ArrayDataset(raw.data, raw.target, tuple(raw.feature_names))


def config(
    task: str = "classification",
    *,
    model: ModelConfig | None = None,
    reg: RegularizationConfig | None = None,
    opt: OptimizerConfig | None = None,
    **training: object,
) -> TrainConfig:
    return TrainConfig(
        task=task,  # type: ignore[arg-type]
        model=model or ModelConfig(hidden_layers=(32,)),
        regularization=reg or RegularizationConfig(),
        optimizer=opt or OptimizerConfig(lr=0.1),
        training=TrainingConfig(**training),  # type: ignore[arg-type]
        device="cpu",
    )


def run(cfg: TrainConfig, data: ArrayDataset) -> tuple[TrainOutcome, list[EpochReport]]:
    reporter = NullReporter()
    outcome = train(cfg, data, reporter)
    return outcome, reporter.reports


def eval_outputs(cfg: TrainConfig, outcome: TrainOutcome, X: torch.Tensor) -> torch.Tensor:
    """The served weights applied to a split, in eval mode, by a network built outside the engine's loop."""
    prepared = outcome.prepared
    net = build_network(cfg.model, int(np.prod(X.shape[1:])), prepared.n_outputs, prepared.image_shape)
    net = net.to(X.dtype)
    net.load_state_dict(outcome.state)
    net.eval()
    with torch.no_grad():
        return net(X)


# --- the loss drops --------------------------------------------------------------------------------


def test_mlp_classifier_training_loss_drops_and_reported_loss_is_eval_mode() -> None:
    cfg = config(model=ModelConfig(hidden_layers=(32,), dropout=0.5), epochs=20, batch_size=32, precision="float64")
    outcome, reports = run(cfg, wine())

    assert [r.epoch for r in reports] == list(range(1, 21))
    assert reports[-1].train_data_loss < 0.5 * reports[0].train_data_loss
    assert outcome.result.validation.accuracy > 0.9
    # Dropout is on while training, so only an eval-mode pass reproduces the reported data loss.
    train_split = outcome.prepared.train
    logits = eval_outputs(cfg, outcome, train_split.X)
    expected = float(F.cross_entropy(logits, train_split.y))
    assert reports[-1].train_data_loss == pytest.approx(expected, rel=1e-12)
    assert outcome.result.train.data_loss == pytest.approx(expected, rel=1e-12)


def test_regression_on_diabetes_explains_the_variance() -> None:
    cfg = config(
        "regression",
        model=ModelConfig(type="linear"),
        opt=OptimizerConfig(lr=0.05),
        epochs=60,
        batch_size=32,
        precision="float64",
    )
    outcome, reports = run(cfg, diabetes())

    assert reports[-1].train_data_loss < reports[0].train_data_loss
    validation = outcome.result.validation
    assert validation is not None and validation.r2 is not None
    assert validation.r2 > 0.3
    split = outcome.prepared.validation
    assert split is not None
    predicted = eval_outputs(cfg, outcome, split.X).squeeze(1).numpy()
    target = split.y.numpy()
    assert validation.r2 == pytest.approx(r2_score(target, predicted), rel=1e-9)
    assert validation.rmse == pytest.approx(float(np.sqrt(np.mean((target - predicted) ** 2))), rel=1e-9)
    assert validation.data_loss == pytest.approx(float(np.mean(0.5 * (target - predicted) ** 2)), rel=1e-9)


def test_standardization_uses_training_rows_only_with_population_std() -> None:
    cfg = config(epochs=1, validation_fraction=0.25, test_fraction=0.15, seed=7)
    data = wine()
    outcome, _ = run(cfg, data)

    encoded = np.unique(data.y, return_inverse=True)[1]
    train_idx, _, _ = split_indices(encoded, "classification", 0.25, 0.15, 7)
    rows = data.X[train_idx]
    np.testing.assert_allclose(outcome.prepared.mean, rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(outcome.prepared.scale, rows.std(axis=0, ddof=0), rtol=1e-12)
    assert outcome.result.test is not None


# --- output layouts --------------------------------------------------------------------------------


def test_binary_classification_uses_one_logit_with_binary_cross_entropy() -> None:
    cfg = config(model=ModelConfig(hidden_layers=(16,)), epochs=10, batch_size=32, precision="float64")
    outcome, _ = run(cfg, breast_cancer())

    assert outcome.prepared.n_outputs == 1
    assert tuple(outcome.state["output.weight"].shape) == (1, 16)
    assert tuple(outcome.state["output.bias"].shape) == (1,)
    split = outcome.prepared.validation
    assert split is not None
    logit = eval_outputs(cfg, outcome, split.X).squeeze(1)
    expected = float(F.binary_cross_entropy_with_logits(logit, split.y.double()))
    assert outcome.result.validation.data_loss == pytest.approx(expected, rel=1e-12)
    assert outcome.result.validation.accuracy == pytest.approx(float(((logit > 0).long() == split.y).double().mean()))
    assert outcome.result.validation.accuracy > 0.9


def test_multinomial_classification_uses_one_output_per_class() -> None:
    outcome, _ = run(config(model=ModelConfig(hidden_layers=(16,)), epochs=2), wine())
    assert outcome.prepared.n_outputs == 3
    assert outcome.prepared.class_labels is not None
    assert len(outcome.prepared.class_labels) == 3
    assert tuple(outcome.state["output.weight"].shape) == (3, 16)


# --- determinism -----------------------------------------------------------------------------------


def metrics(report: EpochReport) -> tuple[object, ...]:
    return (
        report.train_data_loss,
        report.l1_penalty,
        report.l2_penalty,
        report.validation,
        report.totals,
        report.layers,
    )


def test_same_config_and_data_give_identical_runs() -> None:
    cfg = config(
        model=ModelConfig(hidden_layers=(16, 8), dropout=0.2),
        reg=RegularizationConfig(l1=1e-3, l2=1e-3),
        opt=OptimizerConfig(lr=0.05, momentum=0.9),
        epochs=6,
        batch_size=16,
        seed=11,
    )
    first, first_reports = run(cfg, wine())
    second, second_reports = run(cfg, wine())

    assert [metrics(r) for r in first_reports] == [metrics(r) for r in second_reports]
    assert first.state.keys() == second.state.keys()
    for name in first.state:
        assert torch.equal(first.state[name], second.state[name]), name
    other_seed, _ = run(replace(cfg, training=replace(cfg.training, seed=12)), wine())
    assert not torch.equal(other_seed.state["output.weight"], first.state["output.weight"])


# --- early stopping --------------------------------------------------------------------------------


def test_early_stopping_restores_the_best_epoch() -> None:
    patience, epochs = 5, 300
    cfg = config(
        opt=OptimizerConfig(type="adam", lr=0.05),
        epochs=epochs,
        batch_size=32,
        validation_fraction=0.3,
        early_stopping=EarlyStoppingConfig(patience=patience),
        precision="float64",
    )
    reporter = NullReporter()
    outcome = train(cfg, wine(), reporter)
    reports, result = reporter.reports, outcome.result

    assert result.epochs_run < epochs
    assert len(reports) == result.epochs_run
    val_losses = [r.validation["data_loss"] for r in reports if r.validation is not None]
    best_epoch = int(np.argmin(val_losses)) + 1
    assert result.best_epoch == best_epoch
    assert result.weights_epoch == best_epoch
    assert result.epochs_run == best_epoch + patience
    best = reports[best_epoch - 1]
    assert result.validation.data_loss == pytest.approx(best.validation["data_loss"], abs=1e-9)
    assert result.train.data_loss == pytest.approx(best.train_data_loss, abs=1e-9)
    # The kept weights' statistics are reported whatever the recording schedule, and they are the
    # served weights', tensor by tensor.
    for layer in reporter.layers[best_epoch]:
        served = outcome.state[layer["name"]].numpy()
        assert layer["l2_norm"] == pytest.approx(float(np.sqrt((served**2).sum())), rel=1e-12), layer["name"]


# --- divergence and cancellation -------------------------------------------------------------------


def test_absurd_learning_rate_raises_diverged_with_its_epoch() -> None:
    cfg = config("regression", model=ModelConfig(type="linear"), opt=OptimizerConfig(lr=10.0), standardize=False)
    reporter = NullReporter()
    with pytest.raises(Diverged) as raised:
        train(cfg, diabetes(), reporter)
    assert raised.value.epoch >= 1
    # Every epoch before the one that diverged was reported with finite numbers.
    assert [r.epoch for r in reporter.reports] == list(range(1, raised.value.epoch))
    assert all(np.isfinite(r.train_data_loss) for r in reporter.reports)


@pytest.mark.parametrize("model", [ModelConfig(type="linear"), ModelConfig(hidden_layers=(32,))], ids=["linear", "mlp"])
def test_divergence_in_the_first_epoch_raises_diverged(model: ModelConfig) -> None:
    # Features a million times larger than diabetes' own overflow the weights within the first epoch.
    cfg = config("regression", model=model, opt=OptimizerConfig(lr=100.0), standardize=False)
    reporter = NullReporter()
    with pytest.raises(Diverged) as raised:
        train(cfg, diabetes(scale=1e6), reporter)
    assert raised.value.epoch == 1
    assert reporter.reports == []


def test_batch_norm_trains_when_the_last_batch_has_one_row() -> None:
    cfg = config(model=ModelConfig(hidden_layers=(8,), batch_norm=True), epochs=2, batch_size=47)
    assert len(split_indices(wine().y, "classification", 0.2, 0.0, 0)[0]) % 47 == 1
    outcome, reports = run(cfg, wine())
    assert len(reports) == 2
    assert np.isfinite(outcome.result.train.data_loss)


class StopAfter(NullReporter):
    """Asks to stop once it has been asked `calls` times."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls
        self.asked = 0

    def should_stop(self) -> bool:
        self.asked += 1
        return self.asked > self.calls


def test_reporter_that_asks_to_stop_cancels_at_the_next_step() -> None:
    batch_size, calls = 32, 10
    cfg = config(epochs=50, batch_size=batch_size)
    n_train = len(split_indices(wine().y, "classification", 0.2, 0.0, 0)[0])
    steps_per_epoch = -(-n_train // batch_size)
    reporter = StopAfter(calls)

    with pytest.raises(Canceled) as raised:
        train(cfg, wine(), reporter)

    assert reporter.asked == calls + 1
    assert raised.value.epoch == calls // steps_per_epoch + 1
    assert len(reporter.reports) == calls // steps_per_epoch


# --- splits ----------------------------------------------------------------------------------------


def test_stratified_split_keeps_class_balance_and_is_reproducible() -> None:
    y = np.repeat([0, 1, 2], [113, 61, 26])
    rng = np.random.default_rng(5)
    y = rng.permutation(y)
    validation_fraction, test_fraction = 0.2, 0.15
    parts = split_indices(y, "classification", validation_fraction, test_fraction, seed=3)
    train_idx, val_idx, test_idx = parts

    assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
    for idx, fraction in (
        (train_idx, 1 - validation_fraction - test_fraction),
        (val_idx, validation_fraction),
        (test_idx, test_fraction),
    ):
        for label in (0, 1, 2):
            in_class = int((y == label).sum())
            assert abs(int((y[idx] == label).sum()) - fraction * in_class) <= 1, (fraction, label)

    again = split_indices(y, "classification", validation_fraction, test_fraction, seed=3)
    for a, b in zip(parts, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = split_indices(y, "classification", validation_fraction, test_fraction, seed=4)
    assert not np.array_equal(other[1], val_idx)


def test_regression_split_has_the_requested_sizes() -> None:
    y = np.linspace(0.0, 1.0, 101)
    train_idx, val_idx, test_idx = split_indices(y, "regression", 0.2, 0.1, seed=0)
    assert (len(train_idx), len(val_idx), len(test_idx)) == (71, 20, 10)
    assert sorted(np.concatenate([train_idx, val_idx, test_idx]).tolist()) == list(range(101))
