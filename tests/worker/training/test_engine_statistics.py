"""Every weight statistic the engine reports can be recomputed from the weights it serves
(the README's "What is recorded")."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_wine

from worker.training import ArrayDataset, EpochReport, NullReporter, TrainConfig, TrainOutcome, train
from worker.training.config import ModelConfig, OptimizerConfig, RegularizationConfig, TrainingConfig

NEAR_ZERO = 1e-3


def run(
    data: ArrayDataset, model: ModelConfig, reg: RegularizationConfig, epochs: int
) -> tuple[TrainOutcome, list[EpochReport]]:
    config = TrainConfig(
        task="classification",
        model=model,
        regularization=reg,
        optimizer=OptimizerConfig(lr=0.1, momentum=0.5),
        training=TrainingConfig(epochs=epochs, batch_size=32),
        device="cpu",
    )
    reporter = NullReporter()
    outcome = train(config, data, reporter)
    return outcome, reporter.reports


def mlp_run() -> tuple[TrainOutcome, list[EpochReport]]:
    raw = load_wine()
    # An L1 strong enough to empty whole rows, so dead_units and zero_fraction have something to count.
    return run(
        ArrayDataset(raw.data, raw.target, tuple(raw.feature_names)),
        ModelConfig(hidden_layers=(32, 16)),
        RegularizationConfig(l1=0.03),
        epochs=12,
    )


def cnn_run() -> tuple[TrainOutcome, list[EpochReport]]:
    raw = load_digits()
    return run(
        ArrayDataset(raw.data, raw.target, tuple(raw.feature_names), image_shape=(1, 8, 8)),
        ModelConfig(type="cnn", channels=(4, 8), hidden_layers=(16,)),
        RegularizationConfig(l1=0.005),
        epochs=3,
    )


RUNS = {"mlp": mlp_run, "cnn": cnn_run}


@pytest.fixture(scope="module", params=sorted(RUNS))
def trained(request: pytest.FixtureRequest) -> tuple[str, TrainOutcome, list[EpochReport]]:
    outcome, reports = RUNS[request.param]()
    return request.param, outcome, reports


def expected_statistics(w: np.ndarray) -> dict[str, Any]:
    a = np.abs(w)
    expected: dict[str, Any] = {
        "shape": list(w.shape),
        "count": w.size,
        "l1_norm": a.sum(),
        "l2_norm": np.sqrt((w**2).sum()),
        "max_abs": a.max(),
        "mean": w.mean(),
        "std": w.std(ddof=0),
        "zero_fraction": (w == 0).sum() / w.size,
        "near_zero_fraction": (a < NEAR_ZERO).sum() / w.size,
        "dead_units": None,
        "spectral_norm": None,
    }
    if w.ndim >= 2:
        units = w.reshape(w.shape[0], -1)
        expected["dead_units"] = int((np.linalg.norm(units, axis=1) == 0).sum())
        expected["spectral_norm"] = np.linalg.svd(units, compute_uv=False)[0]
    return expected


def test_every_layer_statistic_equals_the_served_weights(trained: tuple[str, TrainOutcome, list[EpochReport]]) -> None:
    kind, outcome, reports = trained
    last = reports[-1]
    assert outcome.result.weights_epoch == last.epoch
    assert [layer["name"] for layer in last.layers] == [
        name for name in outcome.state if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))
    ]

    for layer in last.layers:
        w = outcome.state[layer["name"]].double().numpy()
        for key, value in expected_statistics(w).items():
            if value is None or isinstance(value, list | int):
                assert layer[key] == value, (layer["name"], key)
            else:
                assert layer[key] == pytest.approx(float(value), rel=1e-9, abs=1e-12), (layer["name"], key)
        counts = layer["histogram"]["counts"]
        edges = layer["histogram"]["edges"]
        assert len(edges) == len(counts) + 1
        assert sum(counts) == layer["count"]
        # Values beyond the edges fixed at the first epoch fall in the outermost bins.
        recounted, _ = np.histogram(np.clip(w, edges[0], edges[-1]), bins=np.asarray(edges))
        assert counts == recounted.tolist(), layer["name"]

    assert last.totals["zero_fraction"] > 0
    if kind == "mlp":
        assert sum(layer["dead_units"] or 0 for layer in last.layers) > 0


def test_totals_cover_the_penalized_tensors(trained: tuple[str, TrainOutcome, list[EpochReport]]) -> None:
    _, outcome, reports = trained
    penalized = [entry.name for entry in outcome.result.penalized]
    assert [layer["name"] for layer in reports[-1].layers if layer["penalized"]] == penalized
    weights = [outcome.state[name].double().numpy() for name in penalized]
    values = np.concatenate([w.ravel() for w in weights])

    expected = {
        "count": values.size,
        "l1_norm": np.abs(values).sum(),
        "l2_norm": np.sqrt((values**2).sum()),
        "max_abs": np.abs(values).max(),
        "zero_fraction": (values == 0).sum() / values.size,
        "near_zero_fraction": (np.abs(values) < NEAR_ZERO).sum() / values.size,
    }
    for key, value in expected.items():
        assert reports[-1].totals[key] == pytest.approx(float(value), rel=1e-12), key
        if key in (reported := asdict(outcome.result.weights)):
            assert reported[key] == pytest.approx(float(value), rel=1e-12), key


def test_histogram_edges_are_fixed_across_epochs(trained: tuple[str, TrainOutcome, list[EpochReport]]) -> None:
    _, _, reports = trained
    assert len(reports) >= 3
    first = {layer["name"]: layer["histogram"]["edges"] for layer in reports[0].layers}
    for report in reports[1:]:
        assert {layer["name"]: layer["histogram"]["edges"] for layer in report.layers} == first
        for layer in report.layers:
            assert sum(layer["histogram"]["counts"]) == layer["count"]
    # The weights did move, so equal edges are not equal data.
    assert reports[0].layers[0]["l2_norm"] != reports[-1].layers[0]["l2_norm"]


def test_host_and_device_summaries_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small CPU tensor is summarized with numpy and a large one with torch: both ways give the same
    statistics of the same weights."""
    import torch

    from worker.training import statistics

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 9), torch.nn.ReLU(), torch.nn.Linear(9, 3))
    with torch.no_grad():
        net[0].weight[2].zero_()  # a dead unit and exact zeros to count
        net[2].weight[0, :4] = 5e-4  # near zeros
    penalized = frozenset({"0.weight", "2.weight"})
    results = {}
    for name, limit in (("numpy", 10**9), ("torch", 0)):
        monkeypatch.setattr(statistics, "NUMPY_MAX_ELEMENTS", limit)
        summary = statistics.WeightStatistics(net, penalized)
        summary.compute()  # fixes the edges at these weights
        with torch.no_grad():
            net[0].weight.mul_(2.0)  # past the edges: outermost bins
        results[name] = summary.compute()
        with torch.no_grad():
            net[0].weight.mul_(0.5)
    (numpy_layers, numpy_totals), (torch_layers, torch_totals) = results["numpy"], results["torch"]
    assert [layer["histogram"] for layer in numpy_layers] == [layer["histogram"] for layer in torch_layers]
    assert numpy_layers[0]["dead_units"] == torch_layers[0]["dead_units"] == 1
    assert numpy_layers[2]["near_zero_fraction"] == torch_layers[2]["near_zero_fraction"] > 0
    for mine, theirs in zip(numpy_layers, torch_layers, strict=True):
        for key, value in theirs.items():
            if isinstance(value, float):
                assert mine[key] == pytest.approx(value, rel=1e-12, abs=1e-15), (mine["name"], key)
            else:
                assert mine[key] == value, (mine["name"], key)
    assert numpy_totals == pytest.approx(torch_totals, rel=1e-12)
