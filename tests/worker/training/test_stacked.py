"""Stacked study members: each member trained in one pass with the others ends where the same spec
trained as a single job (its twin: `train(config, data, reporter, member=k)`) ends, to float32
summation order; a study of one member is the job bit for bit; members' dropout masks differ."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes, load_digits, load_wine

from worker.training import ArrayDataset, EpochReport, NullReporter, TrainConfig, train
from worker.training.config import (
    EarlyStoppingConfig,
    ModelConfig,
    OptimizerConfig,
    RegularizationConfig,
    TrainingConfig,
)
from worker.training.stacked import MemberOutcome, StudyRecorder, group_by_shape, train_stacked

# float32, a few hundred steps: stacked and one-at-a-time training differ by summation order only
# (measured <= 5e-5 after 300 steps on small MLPs).
TOLERANCE = 1e-4


def wine() -> ArrayDataset:
    bunch = load_wine()
    return ArrayDataset(bunch.data, bunch.target, tuple(bunch.feature_names))


def diabetes() -> ArrayDataset:
    bunch = load_diabetes()
    return ArrayDataset(bunch.data, bunch.target, tuple(bunch.feature_names))


def base(optimizer: str = "sgd") -> TrainConfig:
    return TrainConfig(
        task="classification",
        model=ModelConfig(hidden_layers=(16, 8)),
        optimizer=OptimizerConfig(type=optimizer, lr=0.05 if optimizer == "sgd" else 0.01),  # type: ignore[arg-type]
        training=TrainingConfig(epochs=6, batch_size=16),
        device="cpu",
    )


REGULARIZERS = [
    RegularizationConfig(),
    RegularizationConfig(l2=0.01),
    RegularizationConfig(l1=0.003),
    RegularizationConfig(l1=0.003, l1_method="subgradient"),
    RegularizationConfig(l1=0.001, l2=0.02),
    RegularizationConfig(weight_decay=0.05),
    RegularizationConfig(max_norm=0.8),
    RegularizationConfig(l1=0.002, max_norm=1.0),
]


def sixteen(optimizer: str) -> list[TrainConfig]:
    """Sixteen members: every regularizer, with and without dropout, two learning rates, and for SGD
    two momenta; two of them stop early or run fewer epochs."""
    configs = []
    for index in range(16):
        config = base(optimizer)
        momentum = 0.9 if optimizer == "sgd" and index % 4 < 2 else 0.0
        config = replace(
            config,
            regularization=REGULARIZERS[index % len(REGULARIZERS)],
            model=replace(config.model, dropout=(0.0, 0.3, 0.5)[index % 3]),
            optimizer=replace(config.optimizer, lr=config.optimizer.lr * (1.0, 0.5)[index // 8], momentum=momentum),
        )
        if index == 13:
            config = replace(config, training=replace(config.training, epochs=3))
        if index == 14:
            stopping = EarlyStoppingConfig(patience=1, min_delta=0.05)
            config = replace(config, training=replace(config.training, early_stopping=stopping))
        configs.append(config)
    return configs


def numbers(report: EpochReport) -> list[float]:
    validation = report.validation or {}
    return [report.train_data_loss, report.l1_penalty, report.l2_penalty, *validation.values()]


def assert_twin(member: MemberOutcome, reports: list[EpochReport], config: TrainConfig, data: ArrayDataset) -> None:
    """The member equals its twin: weights, every reported number, the result's metrics."""
    twin_reporter = NullReporter()
    twin = train(config, data, twin_reporter, member=member.member)
    assert member.outcome is not None
    outcome = member.outcome
    assert outcome.state.keys() == twin.state.keys()
    for name, tensor in twin.state.items():
        assert torch.allclose(outcome.state[name], tensor, rtol=0, atol=TOLERANCE), name
    assert [r.epoch for r in reports] == [r.epoch for r in twin_reporter.reports]
    for stacked, single in zip(reports, twin_reporter.reports, strict=True):
        # Losses compare relatively too: a regression loss in the thousands carries float32 error of 1e-3.
        assert numbers(stacked) == pytest.approx(numbers(single), rel=1e-5, abs=TOLERANCE)
        assert stacked.totals["zero_fraction"] == pytest.approx(single.totals["zero_fraction"], abs=0.01)
    for key in ("epochs_run", "best_epoch", "weights_epoch"):
        assert getattr(outcome.result, key) == getattr(twin.result, key), key
    assert outcome.result.train.data_loss == pytest.approx(twin.result.train.data_loss, rel=1e-5, abs=TOLERANCE)
    assert outcome.result.train.l1_penalty == pytest.approx(twin.result.train.l1_penalty, abs=TOLERANCE)
    assert outcome.result.train.l2_penalty == pytest.approx(twin.result.train.l2_penalty, abs=TOLERANCE)
    assert outcome.result.penalized == twin.result.penalized


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_sixteen_stacked_members_each_equal_their_single_job_twin(optimizer: str) -> None:
    configs = sixteen(optimizer)
    assert len(group_by_shape(configs)) == 1, "one stack"
    recorder = StudyRecorder()
    outcomes = train_stacked(configs, wine(), recorder)
    assert [o.member for o in outcomes] == list(range(16))
    for outcome, config in zip(outcomes, configs, strict=True):
        assert_twin(outcome, recorder.reports[outcome.member], config, wine())
    # The proximal members reach exact zeros, as their twins do.
    proximal = outcomes[2].outcome
    assert proximal is not None
    if optimizer == "sgd":
        assert proximal.result.weights.zero_fraction > 0


def test_a_study_of_one_member_equals_the_job_bit_for_bit() -> None:
    config = replace(base(), model=replace(base().model, dropout=0.3), regularization=RegularizationConfig(l1=0.003))
    job_reporter, recorder = NullReporter(), StudyRecorder()
    job = train(config, wine(), job_reporter)
    (member,) = train_stacked([config], wine(), recorder)
    assert member.outcome is not None
    for name, tensor in job.state.items():
        assert torch.equal(member.outcome.state[name], tensor), name
    assert [numbers(r) for r in recorder.reports[0]] == [numbers(r) for r in job_reporter.reports]
    assert member.outcome.result.train == job.result.train
    assert member.outcome.result.validation == job.result.validation


def test_dropout_masks_differ_between_members_and_each_member_keeps_its_twins() -> None:
    config = replace(base(), model=replace(base().model, dropout=0.4))
    recorder = StudyRecorder()
    first, second = train_stacked([config, config], wine(), recorder)
    assert first.outcome is not None and second.outcome is not None
    # The same spec, the same initial weights and batches: only the masks can make them differ.
    assert not torch.allclose(first.outcome.state["output.weight"], second.outcome.state["output.weight"], atol=1e-3)
    for outcome in (first, second):
        assert_twin(outcome, recorder.reports[outcome.member], config, wine())
    # Without dropout the same two members are the same network.
    plain = replace(config, model=replace(config.model, dropout=0.0))
    a, b = train_stacked([plain, plain], wine())
    assert a.outcome is not None and b.outcome is not None
    assert torch.equal(a.outcome.state["output.weight"], b.outcome.state["output.weight"])


def test_members_of_different_shapes_run_in_groups_each_equal_to_its_twin() -> None:
    mlp = base()
    configs = [
        mlp,
        replace(mlp, model=ModelConfig(type="linear"), regularization=RegularizationConfig(l1=0.01)),
        replace(mlp, regularization=RegularizationConfig(l2=0.01)),
        replace(mlp, model=ModelConfig(type="linear"), regularization=RegularizationConfig(l2=0.05)),
        replace(mlp, model=ModelConfig(hidden_layers=(8,), batch_norm=True, dropout=0.2)),
        replace(
            mlp, model=ModelConfig(hidden_layers=(8,), batch_norm=True), regularization=RegularizationConfig(l2=0.1)
        ),
        replace(mlp, model=ModelConfig(hidden_layers=(4,))),
    ]
    assert group_by_shape(configs) == [[0, 2], [1, 3], [4, 5], [6]]
    recorder = StudyRecorder()
    outcomes = train_stacked(configs, wine(), recorder)
    for outcome, config in zip(outcomes, configs, strict=True):
        assert_twin(outcome, recorder.reports[outcome.member], config, wine())


def test_regression_members_equal_their_twins() -> None:
    config = TrainConfig(
        task="regression",
        model=ModelConfig(hidden_layers=(8,)),
        optimizer=OptimizerConfig(type="adam", lr=0.05),
        training=TrainingConfig(epochs=4, batch_size=32, test_fraction=0.2),
        device="cpu",
    )
    configs = [replace(config, regularization=RegularizationConfig(l1=l1)) for l1 in (0.0, 0.01, 0.1)]
    recorder = StudyRecorder()
    outcomes = train_stacked(configs, diabetes(), recorder)
    for outcome, member_config in zip(outcomes, configs, strict=True):
        assert_twin(outcome, recorder.reports[outcome.member], member_config, diabetes())
        assert outcome.outcome is not None and outcome.outcome.result.test is not None


def test_a_diverging_member_fails_alone() -> None:
    config = base()
    wild = replace(config, optimizer=replace(config.optimizer, lr=1e6))
    outcomes = train_stacked([config, wild], wine())
    assert outcomes[0].outcome is not None and outcomes[0].error is None
    assert outcomes[1].outcome is None and outcomes[1].error is not None


def test_stacked_training_leaves_the_process_wide_rng_unchanged() -> None:
    torch.manual_seed(2024)
    before = torch.get_rng_state()
    config = replace(base(), model=replace(base().model, dropout=0.3))
    train_stacked([config, replace(config, regularization=RegularizationConfig(l2=0.01))], wine())
    assert torch.equal(torch.get_rng_state(), before)


def test_the_group_key_separates_what_members_must_share() -> None:
    config = base()
    shared: list[Any] = [
        replace(config, training=replace(config.training, batch_size=8)),
        replace(config, training=replace(config.training, seed=1)),
        replace(config, optimizer=replace(config.optimizer, type="adam")),
        replace(config, regularization=RegularizationConfig(exclude=("bias",))),
    ]
    per_member: list[Any] = [
        replace(config, regularization=RegularizationConfig(l1=1.0, l2=2.0, max_norm=3.0, weight_decay=0.1)),
        replace(config, optimizer=replace(config.optimizer, lr=0.5, momentum=0.5)),
        replace(config, model=replace(config.model, dropout=0.5)),
        replace(config, training=replace(config.training, epochs=3, early_stopping=EarlyStoppingConfig())),
    ]
    assert all(len(group_by_shape([config, other])) == 2 for other in shared)
    assert all(len(group_by_shape([config, other])) == 1 for other in per_member)
    assert np.array_equal(group_by_shape([]), [])


def test_cnn_members_are_not_stacked_and_equal_their_twins_bit_for_bit() -> None:
    bunch = load_digits()
    digits = ArrayDataset(bunch.data, bunch.target, tuple(bunch.feature_names), image_shape=(1, 8, 8))
    config = TrainConfig(
        task="classification",
        model=ModelConfig(type="cnn", channels=(4,), hidden_layers=(8,), dropout=0.2),
        optimizer=OptimizerConfig(type="adam", lr=0.01),
        training=TrainingConfig(epochs=2, batch_size=128),
        device="cpu",
    )
    configs = [config, replace(config, regularization=RegularizationConfig(l2=0.01))]
    outcomes = train_stacked(configs, digits)
    for outcome, member_config in zip(outcomes, configs, strict=True):
        twin = train(member_config, digits, NullReporter(), member=outcome.member)
        assert outcome.outcome is not None
        for name, tensor in twin.state.items():
            assert torch.equal(outcome.outcome.state[name], tensor), name


def test_the_last_epochs_outputs_are_the_final_ones_when_every_member_keeps_its_last_weights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No member stops early: the final metrics come from the last epoch's evaluation, not another pass over
    the data, and equal those of another pass exactly."""
    from worker.training import stacked

    configs = [c for i, c in enumerate(sixteen("sgd")) if i not in (13, 14)][:8]
    passes: list[int] = []
    forward = stacked._StackedRun.outputs

    def counted(run: Any, split: Any) -> torch.Tensor:
        passes.append(len(split))
        return forward(run, split)

    monkeypatch.setattr(stacked._StackedRun, "outputs", counted)
    reused = train_stacked(configs, wine())
    epochs = configs[0].training.epochs
    assert len(passes) == 2 * epochs, "train and validation once per epoch, nothing after"

    passes.clear()
    load = stacked._StackedRun.load_final_states
    # The same run, told that the kept weights changed: the final outputs come from another pass.
    monkeypatch.setattr(stacked._StackedRun, "load_final_states", lambda run: load(run) and False)
    recomputed = train_stacked(configs, wine())
    assert len(passes) == 2 * epochs + 2
    for mine, theirs in zip(reused, recomputed, strict=True):
        assert mine.outcome is not None and theirs.outcome is not None
        assert mine.outcome.result.train == theirs.outcome.result.train
        assert mine.outcome.result.validation == theirs.outcome.result.validation
