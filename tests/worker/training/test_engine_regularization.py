"""The regularizers mean what the README's objective says: exact zeros from proximal
L1, scikit-learn's ElasticNet and LogisticRegression at convergence, torch's coupled and decoupled
weight decay, max-norm, and `exclude`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import ElasticNet, LogisticRegression
from torch.nn import functional as F

from worker.training import ArrayDataset, NullReporter, TrainConfig, TrainOutcome, train
from worker.training.config import ModelConfig, OptimizerConfig, RegularizationConfig, TrainingConfig
from worker.training.engine import epoch_generator
from worker.training.networks import build_network


def wine() -> ArrayDataset:
    raw = load_wine()
    return ArrayDataset(raw.data, raw.target, tuple(raw.feature_names))


def diabetes() -> ArrayDataset:
    raw = load_diabetes()
    return ArrayDataset(raw.data, raw.target, tuple(raw.feature_names))


def run(
    data: ArrayDataset,
    *,
    task: str = "classification",
    model: ModelConfig | None = None,
    reg: RegularizationConfig | None = None,
    opt: OptimizerConfig | None = None,
    reporter: NullReporter | None = None,
    **training: object,
) -> TrainOutcome:
    config = TrainConfig(
        task=task,  # type: ignore[arg-type]
        model=model or ModelConfig(hidden_layers=(32,)),
        regularization=reg or RegularizationConfig(),
        optimizer=opt or OptimizerConfig(lr=0.1),
        training=TrainingConfig(**training),  # type: ignore[arg-type]
        device="cpu",
    )
    return train(config, data, reporter or NullReporter())


def penalized_weights(outcome: TrainOutcome) -> list[np.ndarray]:
    return [outcome.state[entry.name].double().numpy() for entry in outcome.result.penalized]


# --- proximal and subgradient L1 -------------------------------------------------------------------

L1_SETTINGS = dict(epochs=30, batch_size=32)


@pytest.mark.parametrize("l1", [3e-3, 1e-2, 3e-2])
def test_proximal_l1_zeros_are_exact_and_match_the_reported_totals(l1: float) -> None:
    outcome = run(wine(), reg=RegularizationConfig(l1=l1), **L1_SETTINGS)

    weights = penalized_weights(outcome)
    count = sum(w.size for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    near_zeros = sum(int((np.abs(w) < 1e-3).sum()) for w in weights)
    reported = outcome.result.weights
    assert zeros > 0
    assert reported.count == count
    assert reported.zero_fraction == zeros / count
    assert reported.near_zero_fraction == near_zeros / count
    assert reported.l1_norm == pytest.approx(sum(np.abs(w).sum() for w in weights), rel=1e-12)
    # The penalty is summed in the parameters' float32; the statistics in float64.
    assert outcome.result.train.l1_penalty == pytest.approx(l1 * reported.l1_norm, rel=1e-6)


def test_proximal_l1_gives_more_zeros_as_l1_grows() -> None:
    fractions = [
        run(wine(), reg=RegularizationConfig(l1=l1), **L1_SETTINGS).result.weights.zero_fraction
        for l1 in (1e-3, 3e-3, 1e-2, 3e-2)
    ]
    assert fractions == sorted(fractions)
    assert len(set(fractions)) == len(fractions), f"zero fractions do not grow strictly: {fractions}"


def test_subgradient_l1_leaves_small_values_but_no_exact_zeros() -> None:
    l1 = 1e-2
    proximal = run(wine(), reg=RegularizationConfig(l1=l1), **L1_SETTINGS)
    subgradient = run(wine(), reg=RegularizationConfig(l1=l1, l1_method="subgradient"), **L1_SETTINGS)

    values = np.concatenate([w.ravel() for w in penalized_weights(subgradient)])
    assert int((values == 0).sum()) == 0
    assert subgradient.result.weights.zero_fraction == 0.0
    # The weights the proximal run zeroes are left oscillating near zero, not removed.
    assert subgradient.result.weights.near_zero_fraction > 0.5 * proximal.result.weights.zero_fraction
    assert np.abs(values).min() < 1e-4


# --- elastic net oracle ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alpha", "l1_ratio", "expected_zeros"),
    [(0.5, 0.7, 1), (5.0, 0.9, 3)],
)
def test_linear_regression_with_elastic_net_equals_sklearn(alpha: float, l1_ratio: float, expected_zeros: int) -> None:
    data = diabetes()
    X, y = data.X, data.y
    n = len(y)
    # With no validation or test rows the training split is every row, so these are the engine's statistics.
    X_std = (X - X.mean(axis=0)) / X.std(axis=0, ddof=0)
    l1, l2 = alpha * l1_ratio, alpha * (1 - l1_ratio)
    lipschitz = np.linalg.svd(X_std, compute_uv=False)[0] ** 2 / n + l2
    oracle = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-10, max_iter=100_000).fit(X_std, y)

    outcome = run(
        data,
        task="regression",
        model=ModelConfig(type="linear"),
        reg=RegularizationConfig(l1=l1, l2=l2),
        opt=OptimizerConfig(type="sgd", lr=1.0 / lipschitz),
        epochs=2500,
        batch_size=None,
        validation_fraction=0.0,
        test_fraction=0.0,
        precision="float64",
    )

    np.testing.assert_allclose(outcome.prepared.mean, X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(outcome.prepared.scale, X.std(axis=0, ddof=0), rtol=1e-12)
    coef = outcome.state["linear.weight"].numpy().ravel()
    intercept = float(outcome.state["linear.bias"].item())
    assert np.abs(coef - oracle.coef_).max() <= 1e-4 * np.abs(oracle.coef_).max()
    assert intercept == pytest.approx(oracle.intercept_, rel=1e-9)
    assert int((oracle.coef_ == 0).sum()) == expected_zeros
    np.testing.assert_array_equal(coef == 0, oracle.coef_ == 0)


@pytest.mark.parametrize(
    ("loader", "epochs"),
    [(load_breast_cancer, 1500), (load_wine, 800)],
    ids=["binary", "multinomial"],
)
def test_logistic_regression_with_l2_equals_sklearn(loader: Callable[[], Any], epochs: int) -> None:
    raw = loader()
    X, y = raw.data, raw.target
    n, n_classes = len(y), len(np.unique(y))
    C = 0.05
    X_std = (X - X.mean(axis=0)) / X.std(axis=0, ddof=0)
    # sklearn minimizes C * sum(loss) + ||W||^2 / 2: divided by n * C that is mean loss + (l2 / 2) ||W||^2.
    l2 = 1.0 / (n * C)
    oracle = LogisticRegression(C=C, tol=1e-12, max_iter=100_000).fit(X_std, y)
    # The Hessian of the mean loss is at most X'X/n times 1/4 (sigmoid) or 1/2 (softmax).
    curvature = 0.25 if n_classes == 2 else 0.5
    lipschitz = curvature * np.linalg.svd(X_std, compute_uv=False)[0] ** 2 / n + l2

    outcome = run(
        ArrayDataset(X, y, tuple(raw.feature_names)),
        model=ModelConfig(type="linear"),
        reg=RegularizationConfig(l2=l2),
        opt=OptimizerConfig(type="sgd", lr=1.0 / lipschitz),
        epochs=epochs,
        batch_size=None,
        validation_fraction=0.0,
        precision="float64",
    )

    coef = outcome.state["linear.weight"].numpy()
    intercept = outcome.state["linear.bias"].numpy()
    expected_intercept = oracle.intercept_
    assert coef.shape == oracle.coef_.shape
    if n_classes > 2:
        # Softmax intercepts are unpenalized, so only their differences are determined.
        intercept, expected_intercept = intercept - intercept.mean(), expected_intercept - expected_intercept.mean()
    scale = np.abs(oracle.coef_).max()
    assert np.abs(coef - oracle.coef_).max() <= 1e-5 * scale
    assert np.abs(intercept - expected_intercept).max() <= 1e-5 * max(scale, 1.0)


# --- coupled L2, decoupled weight decay and their torch equivalents --------------------------------


def replay(
    outcome: TrainOutcome,
    config_model: ModelConfig,
    *,
    task: str,
    seed: int,
    epochs: int,
    batch_size: int | None,
    make_optimizer: Callable[[list[torch.nn.Parameter], list[torch.nn.Parameter]], torch.optim.Optimizer],
    before_step: Callable[[list[torch.nn.Parameter]], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Train the same network from the same initial weights on the same batches, with a hand-built torch
    optimizer instead of the engine's regularizer; returns the final state."""
    prepared = outcome.prepared
    X, y = prepared.train.X, prepared.train.y
    torch.manual_seed(seed)
    net = build_network(config_model, int(np.prod(X.shape[1:])), prepared.n_outputs, None).to(torch.float64)
    weights = [p for name, p in net.named_parameters() if "bias" not in name]
    biases = [p for name, p in net.named_parameters() if "bias" in name]
    optimizer = make_optimizer(weights, biases)
    n = len(prepared.train)
    step = batch_size or n
    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.randperm(n, generator=epoch_generator(seed, epoch))
        for start in range(0, n, step):
            rows = order[start : start + step]
            optimizer.zero_grad()
            out = net(X[rows])
            if task == "regression":
                loss = 0.5 * (out.squeeze(1) - y[rows]).square().mean()
            else:
                loss = F.cross_entropy(out, y[rows])
            loss.backward()
            if before_step is not None:
                with torch.no_grad():
                    before_step(weights)
            optimizer.step()
    return {k: v.detach() for k, v in net.state_dict().items()}


def assert_states_equal(engine: dict[str, torch.Tensor], by_hand: dict[str, torch.Tensor], atol: float) -> None:
    assert engine.keys() == by_hand.keys()
    for name in engine:
        assert torch.allclose(engine[name], by_hand[name], rtol=0, atol=atol), name


MLP = ModelConfig(hidden_layers=(16,), activation="tanh")


def test_l2_with_sgd_momentum_equals_torch_sgd_weight_decay() -> None:
    l2, lr, seed, epochs, batch_size = 0.05, 0.05, 3, 8, 32
    outcome = run(
        wine(),
        model=MLP,
        reg=RegularizationConfig(l2=l2),
        opt=OptimizerConfig(type="sgd", lr=lr, momentum=0.9),
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        precision="float64",
    )
    by_hand = replay(
        outcome,
        MLP,
        task="classification",
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        make_optimizer=lambda weights, biases: torch.optim.SGD(
            [{"params": weights, "weight_decay": l2}, {"params": biases, "weight_decay": 0.0}], lr=lr, momentum=0.9
        ),
    )
    assert_states_equal(outcome.state, by_hand, atol=1e-10)
    # The penalty did act: the same run without it ends elsewhere.
    plain = run(
        wine(),
        model=MLP,
        opt=OptimizerConfig(type="sgd", lr=lr, momentum=0.9),
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        precision="float64",
    )
    assert not torch.allclose(plain.state["output.weight"], by_hand["output.weight"], atol=1e-3)


LINEAR = ModelConfig(type="linear")
ADAM_STEPS = 300


def adam_run(opt_type: str, reg: RegularizationConfig) -> TrainOutcome:
    return run(
        wine(),
        model=LINEAR,
        reg=reg,
        opt=OptimizerConfig(type=opt_type, lr=0.01),  # type: ignore[arg-type]
        epochs=ADAM_STEPS,
        batch_size=None,
        validation_fraction=0.0,
        precision="float64",
    )


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_adam_with_l2_is_coupled_and_differs_from_adamw() -> None:
    wd = 0.1
    coupled = adam_run("adam", RegularizationConfig(l2=wd))
    decoupled = adam_run("adamw", RegularizationConfig(weight_decay=wd))

    assert relative_difference(coupled.state["linear.weight"], decoupled.state["linear.weight"]) > 0.3
    by_hand = replay(
        coupled,
        LINEAR,
        task="classification",
        seed=0,
        epochs=ADAM_STEPS,
        batch_size=None,
        make_optimizer=lambda weights, biases: torch.optim.Adam(
            [{"params": weights, "weight_decay": wd}, {"params": biases, "weight_decay": 0.0}], lr=0.01
        ),
    )
    assert_states_equal(coupled.state, by_hand, atol=1e-10)


@pytest.mark.parametrize("opt_type", ["adamw", "adam"])
def test_decoupled_weight_decay_with_adam_equals_torch_adamw(opt_type: str) -> None:
    wd = 0.1
    outcome = adam_run(opt_type, RegularizationConfig(weight_decay=wd))
    by_hand = replay(
        outcome,
        LINEAR,
        task="classification",
        seed=0,
        epochs=ADAM_STEPS,
        batch_size=None,
        make_optimizer=lambda weights, biases: torch.optim.AdamW(
            [{"params": weights, "weight_decay": wd}, {"params": biases, "weight_decay": 0.0}], lr=0.01
        ),
    )
    assert_states_equal(outcome.state, by_hand, atol=1e-10)


def test_decoupled_weight_decay_with_sgd_shrinks_weights_by_one_minus_lr_wd() -> None:
    wd, lr, epochs = 0.2, 0.1, 40

    def sgd(reg: RegularizationConfig) -> TrainOutcome:
        return run(
            wine(),
            model=LINEAR,
            reg=reg,
            opt=OptimizerConfig(type="sgd", lr=lr),
            epochs=epochs,
            batch_size=None,
            validation_fraction=0.0,
            precision="float64",
        )

    decayed, plain = sgd(RegularizationConfig(weight_decay=wd)), sgd(RegularizationConfig())
    assert decayed.result.weights.l2_norm < 0.9 * plain.result.weights.l2_norm
    assert decayed.result.train.l2_penalty == 0.0

    def shrink(weights: list[torch.nn.Parameter]) -> None:
        for w in weights:
            w.mul_(1 - lr * wd)

    by_hand = replay(
        decayed,
        LINEAR,
        task="classification",
        seed=0,
        epochs=epochs,
        batch_size=None,
        make_optimizer=lambda weights, biases: torch.optim.SGD(weights + biases, lr=lr),
        before_step=shrink,
    )
    assert_states_equal(decayed.state, by_hand, atol=1e-12)


# --- max-norm ------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_norm", [0.3, 1.0])
def test_max_norm_caps_every_unit_and_binds_when_small(max_norm: float) -> None:
    outcome = run(
        wine(),
        reg=RegularizationConfig(max_norm=max_norm),
        opt=OptimizerConfig(type="adam", lr=0.05),
        epochs=30,
        batch_size=32,
        precision="float64",
    )
    matrices = [w for w in penalized_weights(outcome) if w.ndim >= 2]
    assert len(matrices) == 2
    for w in matrices:
        row_norms = np.linalg.norm(w.reshape(w.shape[0], -1), axis=1)
        assert row_norms.max() <= max_norm + 1e-6
        assert np.isclose(row_norms, max_norm, rtol=0, atol=1e-5).any()

    unconstrained = run(wine(), opt=OptimizerConfig(type="adam", lr=0.05), epochs=30, batch_size=32)
    largest = max(np.linalg.norm(w.reshape(w.shape[0], -1), axis=1).max() for w in penalized_weights(unconstrained))
    assert largest > max_norm


# --- exclude ---------------------------------------------------------------------------------------


def test_default_exclude_leaves_biases_and_batch_norm_unpenalized() -> None:
    l1, l2 = 0.02, 0.01
    outcome = run(
        wine(),
        model=ModelConfig(hidden_layers=(16, 8), batch_norm=True),
        reg=RegularizationConfig(l1=l1, l2=l2),
        epochs=10,
        batch_size=32,
        precision="float64",
    )
    names = [entry.name for entry in outcome.result.penalized]
    assert names == ["hidden.0.linear.weight", "hidden.1.linear.weight", "output.weight"]
    assert all(entry.l1 == l1 and entry.l2 == l2 for entry in outcome.result.penalized)
    assert "hidden.0.norm.weight" in outcome.state

    # The penalty terms and the sparsity touch the penalized weights only.
    weights = penalized_weights(outcome)
    assert outcome.result.train.l1_penalty == pytest.approx(l1 * sum(np.abs(w).sum() for w in weights), rel=1e-12)
    assert outcome.result.train.l2_penalty == pytest.approx(l2 / 2 * sum((w**2).sum() for w in weights), rel=1e-12)
    for name, tensor in outcome.state.items():
        if name not in names and tensor.is_floating_point() and "running" not in name:
            assert int((tensor == 0).sum()) == 0, name


def test_glob_pattern_excludes_a_whole_layer() -> None:
    outcome = run(
        wine(),
        model=ModelConfig(hidden_layers=(16, 8)),
        reg=RegularizationConfig(l1=0.05, exclude=("bias", "norm", "hidden.0.*")),
        epochs=15,
        batch_size=32,
    )
    names = [entry.name for entry in outcome.result.penalized]
    assert names == ["hidden.1.linear.weight", "output.weight"]
    assert int((outcome.state["hidden.0.linear.weight"] == 0).sum()) == 0
    assert int((outcome.state["hidden.1.linear.weight"] == 0).sum()) > 0
