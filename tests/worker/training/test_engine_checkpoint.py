"""End-of-epoch checkpoints: a run stopped after any epoch and resumed from its checkpoint ends with
exactly the weights and metrics of a run that was never stopped; checkpoints hold no pickle."""

from __future__ import annotations

import itertools
import json
import struct
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch
from sklearn.datasets import load_digits, load_wine

from worker.training import ArrayDataset, Canceled, EpochReport, NullReporter, TrainConfig, train
from worker.training.config import EarlyStoppingConfig, ModelConfig, OptimizerConfig, TrainingConfig
from worker.training.engine import MAX_LAYER_STAT_EPOCHS


class StopAfterEpoch(NullReporter):
    """Asks to stop as soon as `epochs` epochs have been reported, as a cancel or a crash would."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def should_stop(self) -> bool:
        return len(self.reports) >= self.epochs


def wine() -> ArrayDataset:
    bunch = load_wine()
    return ArrayDataset(bunch.data, bunch.target, tuple(bunch.feature_names))


def digits() -> ArrayDataset:
    bunch = load_digits()
    return ArrayDataset(bunch.data, bunch.target, tuple(bunch.feature_names), image_shape=(1, 8, 8))


CASES: list[tuple[str, TrainConfig, Any]] = [
    (
        "sgd-momentum-dropout",
        TrainConfig(
            task="classification",
            model=ModelConfig(hidden_layers=(16, 8), dropout=0.3),
            optimizer=OptimizerConfig(lr=0.05, momentum=0.9),
            training=TrainingConfig(epochs=6, batch_size=16),
        ),
        wine,
    ),
    (
        "adamw-batchnorm-early-stopping",
        TrainConfig(
            task="classification",
            model=ModelConfig(hidden_layers=(16,), batch_norm=True),
            optimizer=OptimizerConfig(type="adamw", lr=0.05),
            training=TrainingConfig(epochs=40, batch_size=32, early_stopping=EarlyStoppingConfig(patience=2)),
        ),
        wine,
    ),
    (
        "adam-cnn-proximal",
        TrainConfig(
            task="classification",
            model=ModelConfig(type="cnn", channels=(4,), hidden_layers=(8,), dropout=0.2),
            optimizer=OptimizerConfig(type="adam", lr=0.01),
            training=TrainingConfig(epochs=4, batch_size=128),
        ),
        digits,
    ),
]


@pytest.mark.parametrize(("name", "config", "data"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("stop_after", [1, 3])
def test_resumed_run_equals_an_uninterrupted_one(
    tmp_path: Path, name: str, config: TrainConfig, data: Any, stop_after: int
) -> None:
    uninterrupted = NullReporter()
    expected = train(config, data(), uninterrupted)
    if expected.result.epochs_run <= stop_after:
        pytest.fail(f"{name} must run more than {stop_after} epochs for this test to mean anything")

    checkpoint = tmp_path / "job.safetensors"
    first = StopAfterEpoch(stop_after)
    with pytest.raises(Canceled):
        train(config, data(), first, checkpoint_path=checkpoint)
    resumed = NullReporter()
    outcome = train(config, data(), resumed, checkpoint_path=checkpoint)

    # Every epoch is reported exactly once across the two attempts, with the same numbers.
    def numbers(reports: list[EpochReport]) -> list[tuple[Any, ...]]:
        return [(r.epoch, r.train_data_loss, r.l1_penalty, r.l2_penalty, r.validation, r.totals) for r in reports]

    assert numbers(first.reports + resumed.reports) == numbers(uninterrupted.reports)
    assert outcome.state.keys() == expected.state.keys()
    for key, tensor in expected.state.items():
        assert torch.equal(outcome.state[key], tensor), key
    for key in ("epochs_run", "best_epoch", "weights_epoch", "train", "validation", "weights"):
        assert getattr(outcome.result, key) == getattr(expected.result, key), key


def test_a_checkpoint_is_plain_safetensors(tmp_path: Path) -> None:
    checkpoint = tmp_path / "job.safetensors"
    config = TrainConfig(
        task="classification",
        model=ModelConfig(hidden_layers=(4,)),
        optimizer=OptimizerConfig(momentum=0.9),
        training=TrainingConfig(epochs=2),
    )
    train(config, wine(), NullReporter(), checkpoint_path=checkpoint)
    raw = checkpoint.read_bytes()
    (header_size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_size])
    metadata = header.pop("__metadata__")
    assert metadata["epoch"] == "2"
    assert json.loads(metadata["progress"])["best_epoch"] >= 1
    assert set(header) == {
        "net/hidden.0.linear.weight",
        "net/hidden.0.linear.bias",
        "net/output.weight",
        "net/output.bias",
        "optimizer/0/momentum_buffer",
        "optimizer/1/momentum_buffer",
        "optimizer/2/momentum_buffer",
        "optimizer/3/momentum_buffer",
        "rng/torch",
    }
    assert not list(tmp_path.glob("*.partial")), "the temporary file is renamed into place"


def test_long_runs_store_layer_statistics_on_a_schedule_and_totals_every_epoch() -> None:
    epochs = 3 * MAX_LAYER_STAT_EPOCHS + 2
    config = TrainConfig(
        task="classification", model=ModelConfig(type="linear"), training=TrainingConfig(epochs=epochs, batch_size=None)
    )
    reporter = NullReporter()
    train(config, wine(), reporter)
    recorded = sorted(reporter.layers)
    assert recorded[0] == 1 and recorded[-1] == epochs
    assert len(recorded) <= MAX_LAYER_STAT_EPOCHS + 2
    assert all(b - a <= 4 for a, b in itertools.pairwise(recorded)), "evenly spread"
    assert len(reporter.reports) == epochs
    assert all(r.totals["count"] == 13 * 3 for r in reporter.reports)


def test_result_reports_where_the_time_went() -> None:
    config = TrainConfig(task="classification", training=TrainingConfig(epochs=3))
    result = train(config, wine(), NullReporter()).result
    timing = asdict(result.timing)
    assert set(timing) == {"steps_seconds", "evaluation_seconds", "reporting_seconds"}
    assert all(value > 0 for value in timing.values())
    assert sum(timing.values()) <= result.seconds
