"""Randomness is owned: a job draws its initial weights, batch order and dropout masks from its own
generators, so two jobs trained at once on two threads (as a worker with concurrency > 1 runs them)
each equal the same job trained alone, bit for bit, and training leaves the process-wide RNG alone."""

from __future__ import annotations

import threading

import numpy as np
import torch
from sklearn.datasets import load_wine

from worker.training import ArrayDataset, NullReporter, TrainConfig, TrainOutcome, train
from worker.training.config import ModelConfig, OptimizerConfig, TrainingConfig
from worker.training.networks import Dropout
from worker.training.randomness import dropout_generator


def wine() -> ArrayDataset:
    bunch = load_wine()
    return ArrayDataset(bunch.data, bunch.target, tuple(bunch.feature_names))


def config(seed: int, dropout: float) -> TrainConfig:
    return TrainConfig(
        task="classification",
        model=ModelConfig(hidden_layers=(32, 16), dropout=dropout),
        optimizer=OptimizerConfig(lr=0.05, momentum=0.9),
        training=TrainingConfig(epochs=8, batch_size=8, seed=seed),
        device="cpu",
    )


def assert_same(a: TrainOutcome, b: TrainOutcome) -> None:
    assert a.state.keys() == b.state.keys()
    for key in a.state:
        assert torch.equal(a.state[key], b.state[key]), key
    assert a.result.train == b.result.train
    assert a.result.validation == b.result.validation


def test_concurrent_jobs_with_dropout_each_equal_the_job_trained_alone() -> None:
    configs = [config(seed=1, dropout=0.3), config(seed=2, dropout=0.5)]
    alone = [train(c, wine(), NullReporter()) for c in configs]

    together: list[TrainOutcome | None] = [None, None]
    failures: list[BaseException] = []
    start = threading.Barrier(2)

    def run(index: int) -> None:
        try:
            start.wait()
            together[index] = train(configs[index], wine(), NullReporter())
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    for expected, outcome in zip(alone, together, strict=True):
        assert outcome is not None
        assert_same(outcome, expected)


def test_training_leaves_the_process_wide_rng_unchanged() -> None:
    torch.manual_seed(12345)
    before = torch.get_rng_state()
    train(config(seed=3, dropout=0.4), wine(), NullReporter())
    assert torch.equal(torch.get_rng_state(), before)


def test_the_global_seed_does_not_change_a_job() -> None:
    torch.manual_seed(0)
    first = train(config(seed=4, dropout=0.3), wine(), NullReporter())
    torch.manual_seed(99)
    torch.rand(1000)
    second = train(config(seed=4, dropout=0.3), wine(), NullReporter())
    assert_same(first, second)


def test_the_member_index_selects_the_dropout_stream_only() -> None:
    base = config(seed=5, dropout=0.3)
    job, member_0, member_1 = (
        train(base, wine(), NullReporter()),
        train(base, wine(), NullReporter(), member=0),
        train(base, wine(), NullReporter(), member=1),
    )
    assert_same(job, member_0)
    assert not torch.equal(job.state["output.weight"], member_1.state["output.weight"])
    # Without dropout the member index draws nothing, so it changes nothing.
    plain = config(seed=5, dropout=0.0)
    assert_same(train(plain, wine(), NullReporter()), train(plain, wine(), NullReporter(), member=3))


def test_dropout_masks_come_from_the_given_generator() -> None:
    layer = Dropout(0.5, generator=dropout_generator(seed=7)).train()
    x = torch.ones(40, 50)
    first = layer(x)
    layer.generator = dropout_generator(seed=7)
    assert torch.equal(layer(x), first)
    other = Dropout(0.5, generator=dropout_generator(seed=7, member=1)).train()
    assert not torch.equal(other(x), first)
    # The same stream, drawn directly: the rule a stacked trainer reproduces.
    bits = torch.randint(-(2**63), 2**63 - 1, (1000,), dtype=torch.int64, generator=dropout_generator(seed=7))
    kept = bits.view(torch.int32)[:2000] < layer.threshold
    assert np.array_equal((first != 0).flatten().numpy(), kept.numpy())
