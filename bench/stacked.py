"""Stacked study members against the same members trained one after another, in one run.

Sixteen MLP members (100 -> 256 -> 256 -> 10, SGD momentum 0.9) that differ only in their
regularization (an L2 grid crossed with proximal L1 on and off) on the same 20,000 x 100 synthetic
rows (80% train, 20% validation), two ways, in this process:

  stacked     worker.training.stacked.train_stacked: one pass over (16, out, in) weights
  sequential  worker.training.engine.train, the sixteen members one after another

at batch 256 and at batch 32, with per-epoch evaluation and reporting as a job does it. The ways are
interleaved over repeats (the machine is noisy) and the ratio of each repeat's times is reported as
its median [min, max] against the targets (>= 1.5x at batch 256, >= 2.5x at batch 32, on CPU).

    python -m bench.stacked [--epochs 2] [--repeats 3] [--threads N] [--batch-sizes 256 32]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np
import torch

from worker.training import ArrayDataset, NullReporter, TrainConfig, train
from worker.training.config import ModelConfig, OptimizerConfig, RegularizationConfig, TrainingConfig
from worker.training.stacked import train_stacked

ROWS, FEATURES, CLASSES = 20_000, 100, 10
HIDDEN = (256, 256)
MEMBERS = 16
SEED = 0
# The targets (CPU): stacking 16 such MLPs was measured at 1.6x and 2.7-3.0x on 2 cores.
TARGETS = {256: 1.5, 32: 2.5}


def make_data() -> ArrayDataset:
    """Ten classes from a random linear teacher with noise: learnable, not trivial."""
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((ROWS, FEATURES)).astype(np.float32)
    teacher = rng.standard_normal((FEATURES, CLASSES)).astype(np.float32)
    y = (X @ teacher + 2.0 * rng.standard_normal((ROWS, CLASSES)).astype(np.float32)).argmax(axis=1)
    return ArrayDataset(X, y.astype(np.int64), tuple(f"x{i}" for i in range(FEATURES)))


def members(batch_size: int, epochs: int) -> list[TrainConfig]:
    base = TrainConfig(
        task="classification",
        model=ModelConfig(hidden_layers=HIDDEN),
        optimizer=OptimizerConfig(lr=0.05, momentum=0.9),
        training=TrainingConfig(epochs=epochs, batch_size=batch_size, seed=SEED),
        device="cpu",
    )
    l2_grid = np.geomspace(1e-5, 1e-2, MEMBERS // 2)
    return [
        replace(base, regularization=RegularizationConfig(l2=float(l2), l1=l1)) for l2 in l2_grid for l1 in (0.0, 1e-5)
    ]


def time_stacked(configs: list[TrainConfig], data: ArrayDataset) -> float:
    started = time.perf_counter()
    train_stacked(configs, data)
    return time.perf_counter() - started


def time_sequential(configs: list[TrainConfig], data: ArrayDataset) -> float:
    started = time.perf_counter()
    for index, config in enumerate(configs):
        train(config, data, NullReporter(), member=index)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(TARGETS), choices=list(TARGETS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = make_data()
    print(
        f"{MEMBERS} members {FEATURES}-{'-'.join(map(str, HIDDEN))}-{CLASSES}, {ROWS} rows, {args.epochs} epochs, "
        f"{args.repeats} interleaved repeats, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    for batch_size in args.batch_sizes:
        target = TARGETS[batch_size]
        configs = members(batch_size, args.epochs)
        ratios, stacked, sequential = [], [], []
        for _ in range(args.repeats):
            stacked.append(time_stacked(configs, data))
            sequential.append(time_sequential(configs, data))
            ratios.append(sequential[-1] / stacked[-1])
        verdict = "meets" if statistics.median(ratios) >= target else "MISSES"
        print(
            f"batch {batch_size:>3}: stacked {statistics.median(stacked):6.2f} s, "
            f"sequential {statistics.median(sequential):6.2f} s (medians); "
            f"ratio {statistics.median(ratios):.2f}x [{min(ratios):.2f}, {max(ratios):.2f}] "
            f"(target >= {target}x: {verdict})"
        )


if __name__ == "__main__":
    main()
