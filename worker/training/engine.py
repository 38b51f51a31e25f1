"""The training loop: build data, build net, build optimizer, loop epochs, report."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from worker.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from worker.training.config import OptimizerConfig, Task, TrainConfig
from worker.training.data import ArrayDataset, PreparedData, Split, SplitRows, prepare
from worker.training.metrics import classification_metrics, regression_metrics
from worker.training.networks import build_network
from worker.training.randomness import dropout_generator, init_generator, restore_generator
from worker.training.regularization import Regularizer
from worker.training.reporting import EpochReport, Reporter
from worker.training.results import (
    PenalizedTensor,
    SplitMetrics,
    TrainingResult,
    TrainingTiming,
    TrainMetrics,
    WeightTotals,
)
from worker.training.statistics import WeightStatistics

# Rows per forward pass when evaluating: bounds activation memory on large splits.
EVAL_CHUNK_ROWS = 8192
# The per-epoch training loss (eval mode) is measured on at most this many training rows, a fixed
# sample, so that reporting stays a few percent of an epoch; the final result uses every row.
TRAIN_LOSS_SAMPLE_ROWS = 4096
# Per-layer statistics are stored for at most about this many epochs of a run (always the first and
# last, and the epoch whose weights are kept); totals are stored for every epoch.
MAX_LAYER_STAT_EPOCHS = 200


class Diverged(Exception):
    def __init__(self, epoch: int, what: str) -> None:
        super().__init__(f"training diverged at epoch {epoch}: {what} is not finite; lower the learning rate")
        self.epoch = epoch


class Canceled(Exception):
    def __init__(self, epoch: int) -> None:
        super().__init__(f"stopped at epoch {epoch} on request")
        self.epoch = epoch


@dataclass
class TrainOutcome:
    result: TrainingResult
    state: dict[str, torch.Tensor]
    prepared: PreparedData


@dataclass
class Progress:
    """What the loop carries from epoch to epoch, and what a checkpoint must restore."""

    best_loss: float = math.inf
    best_epoch: int = 0
    stale_epochs: int = 0
    stopped_early: bool = False
    seconds: dict[str, float] = field(default_factory=lambda: {"steps": 0.0, "evaluation": 0.0, "reporting": 0.0})


def weight_totals(totals: dict[str, Any]) -> WeightTotals:
    """The result's totals over the penalized tensors, from the statistics' totals."""
    return WeightTotals(
        count=int(totals["count"]),
        l1_norm=totals["l1_norm"],
        l2_norm=totals["l2_norm"],
        zero_fraction=totals["zero_fraction"],
        near_zero_fraction=totals["near_zero_fraction"],
    )


def penalized_tensors(reg: Regularizer) -> list[PenalizedTensor]:
    return [
        PenalizedTensor(name=name, l1=reg.cfg.l1, l2=reg.cfg.l2, weight_decay=reg.cfg.weight_decay)
        for name, _ in reg.penalized
    ]


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("the job asks for cuda but this worker has no GPU")
        return torch.device("cuda")
    return torch.device("cpu")


def data_loss(
    task: Task,
    output: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy (one logit: binary cross-entropy) or mean (1/2)(y - y_hat)^2. With class
    weights, each row's loss is multiplied by its class's weight and the sum still divided by the row
    count, as scikit-learn's class_weight does (sum_i w_i loss_i / n, not a mean over the weights)."""
    if task == "regression":
        squared = 0.5 * (output.squeeze(1) - target).square()
        return squared.mean() if reduction == "mean" else squared.sum()
    if class_weights is None:
        if output.shape[1] == 1:
            return F.binary_cross_entropy_with_logits(output.squeeze(1), target.to(output.dtype), reduction=reduction)
        return F.cross_entropy(output, target, reduction=reduction)
    if output.shape[1] == 1:
        rows = F.binary_cross_entropy_with_logits(output.squeeze(1), target.to(output.dtype), reduction="none")
    else:
        rows = F.cross_entropy(output, target, reduction="none")
    weighted = rows * class_weights[target]
    return weighted.mean() if reduction == "mean" else weighted.sum()


def balanced_class_weights(y: torch.Tensor, n_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """scikit-learn's class_weight="balanced" on the training split: n / (n_classes * count_c), so
    that the weights of the training rows sum to n. A class without training rows gets weight 0."""
    counts = torch.bincount(y, minlength=n_classes).to(dtype)
    weights = len(y) / (n_classes * counts)
    return torch.where(counts > 0, weights, torch.zeros_like(weights))


def build_optimizer(net: nn.Module, reg: Regularizer, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    penalized = {id(p) for p in reg.params}
    decayed = [p for p in net.parameters() if id(p) in penalized]
    others = [p for p in net.parameters() if id(p) not in penalized]
    if cfg.type == "sgd":
        return torch.optim.SGD(decayed + others, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.type == "adam":
        return torch.optim.Adam(decayed + others, lr=cfg.lr, betas=cfg.betas)
    # AdamW applies the decoupled decay itself, to the penalized tensors only.
    groups = [
        {"params": decayed, "weight_decay": reg.cfg.weight_decay},
        {"params": others, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=cfg.betas)


@torch.inference_mode()
def evaluate(net: nn.Module, split: Split, task: Task, class_weights: torch.Tensor | None = None) -> dict[str, float]:
    """Data loss (the objective's data term: class-weighted when the job weighs classes) and accuracy
    (or r2 and rmse) in eval mode, with one host transfer."""
    return _forward(net, split, task, class_weights, keep_outputs=False)[0]


def _forward(
    net: nn.Module, split: Split, task: Task, class_weights: torch.Tensor | None, keep_outputs: bool
) -> tuple[dict[str, float], torch.Tensor | None]:
    net.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=split.X.device)
    hits = torch.zeros((), dtype=torch.float64, device=split.X.device)
    outputs = []
    for start in range(0, len(split), EVAL_CHUNK_ROWS):
        x, y = split.X[start : start + EVAL_CHUNK_ROWS], split.y[start : start + EVAL_CHUNK_ROWS]
        out = net(x)
        if keep_outputs:
            outputs.append(out)
        loss_sum += data_loss(task, out, y, reduction="sum", class_weights=class_weights).to(torch.float64)
        if task == "classification":
            predicted = (out.squeeze(1) > 0).long() if out.shape[1] == 1 else out.argmax(dim=1)
            hits += (predicted == y).sum()
    kept = torch.cat(outputs) if keep_outputs else None
    n = len(split)
    if task == "classification":
        loss, correct = torch.stack([loss_sum, hits]).tolist()
        return {"data_loss": loss / n, "accuracy": correct / n}, kept
    y64 = split.y.to(torch.float64)
    loss, total_sq = torch.stack([loss_sum, (y64 - y64.mean()).square().sum()]).tolist()
    residual_sq = 2.0 * loss
    r2 = 1.0 - residual_sq / total_sq if total_sq > 0 else 0.0
    return {"data_loss": loss / n, "r2": r2, "rmse": math.sqrt(residual_sq / n)}, kept


@torch.inference_mode()
def evaluate_fully(
    net: nn.Module, split: Split, task: Task, n_classes: int, class_weights: torch.Tensor | None = None
) -> dict[str, Any]:
    """Everything the result reports for one split: `evaluate`'s numbers, then the metrics of
    worker/training/metrics.py computed on the host from the outputs, fetched once."""
    reported, outputs = _forward(net, split, task, class_weights, keep_outputs=True)
    assert outputs is not None
    host_outputs = outputs.to("cpu", torch.float64).numpy()
    y_true = split.y.to("cpu").numpy()
    if task == "classification":
        return reported | classification_metrics(host_outputs, y_true, n_classes)
    return reported | regression_metrics(host_outputs, y_true)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The data order of an epoch depends only on (seed, epoch), so a resumed job continues exactly."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))


def batch_bounds(n_rows: int, batch_size: int | None, merge_single_row: bool) -> list[tuple[int, int]]:
    """(start, stop) of each step's rows; None is one full batch. Batch norm cannot normalize a
    batch of one row in training mode, so with batch norm a lone last row joins the batch before it."""
    size = min(batch_size or n_rows, n_rows)
    bounds = [(start, min(start + size, n_rows)) for start in range(0, n_rows, size)]
    if merge_single_row and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n_rows)]
    return bounds


def loss_sample(split: Split, seed: int) -> Split:
    if len(split) <= TRAIN_LOSS_SAMPLE_ROWS:
        return split
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randperm(len(split), generator=generator)[:TRAIN_LOSS_SAMPLE_ROWS].sort().values.to(split.X.device)
    return Split(split.X[rows], split.y[rows])


def records_layers(epoch: int, epochs: int) -> bool:
    stride = math.ceil(epochs / MAX_LAYER_STAT_EPOCHS)
    return epoch == 1 or epoch == epochs or epoch % stride == 0


def train(
    config: TrainConfig,
    data: ArrayDataset,
    reporter: Reporter,
    checkpoint_path: Path | None = None,
    *,
    member: int = 0,
    rows: SplitRows | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
) -> TrainOutcome:
    """Train to the end (or to early stopping). With `checkpoint_path`, an existing checkpoint there is
    resumed from (the run continues exactly where it stopped), and a checkpoint is written there after
    every epoch; with `on_checkpoint`, each epoch's checkpoint is handed to it instead, as a copy in
    memory, for the caller to write when it chooses (worker/runner.py writes only what goes with the
    epochs it has recorded).
    Every draw comes from generators seeded from training.seed (worker/training/randomness.py);
    `member` selects the dropout stream: 0 for a job, k for the twin of a study's member k."""
    started = time.perf_counter()
    device = resolve_device(config.device)
    dtype = torch.float64 if config.training.precision == "float64" else torch.float32
    task, cfg_train = config.task, config.training

    prepared = prepare(data, task, cfg_train, device, dtype, rows)
    train_split, val_split = prepared.train, prepared.validation
    train_loss_rows = loss_sample(train_split, cfg_train.seed)
    n_features = int(np.prod(train_split.X.shape[1:]))
    n_classes = len(prepared.class_labels or ())
    class_weights = None
    if cfg_train.class_weight == "balanced":
        if task != "classification":
            raise ValueError("training.class_weight applies to classification only")
        class_weights = balanced_class_weights(train_split.y, n_classes, dtype)

    masks = dropout_generator(cfg_train.seed, member, device)
    net = build_network(
        config.model, n_features, prepared.n_outputs, prepared.image_shape, init_generator(cfg_train.seed), masks
    )
    net = net.to(device=device, dtype=dtype)
    reg = Regularizer(net, config.regularization, optimizer_decays=config.optimizer.type == "adamw")
    optimizer = build_optimizer(net, reg, config.optimizer)
    stats = WeightStatistics(net, reg.penalized_names)

    progress, best_state, first_epoch = Progress(), None, 1
    if checkpoint_path is not None and checkpoint_path.exists():
        saved = load_checkpoint(checkpoint_path)
        net.load_state_dict(saved.net)
        optimizer.load_state_dict(saved.optimizer)
        restore_generator(masks, saved.rng)
        stats.edges = saved.histogram_edges
        progress = Progress(**saved.progress)
        best_state = {k: v.to(device) for k, v in saved.best_state.items()} if saved.best_state else None
        first_epoch = saved.epoch + 1

    n_train = len(train_split)
    batches = batch_bounds(n_train, cfg_train.batch_size, merge_single_row=config.model.batch_norm)
    stopping = cfg_train.early_stopping
    epochs_run = first_epoch - 1
    lr = optimizer.param_groups[0]["lr"]

    for epoch in range(first_epoch, cfg_train.epochs + 1):
        if progress.stopped_early:
            break
        epoch_started = time.perf_counter()
        net.train()
        order = torch.randperm(n_train, generator=epoch_generator(cfg_train.seed, epoch)).to(device)
        for start, stop in batches:
            if reporter.should_stop():
                raise Canceled(epoch)
            batch = order[start:stop]
            optimizer.zero_grad(set_to_none=True)
            loss = data_loss(task, net(train_split.X[batch]), train_split.y[batch], class_weights=class_weights)
            loss.backward()
            reg.add_gradient_terms()
            lr = optimizer.param_groups[0]["lr"]
            reg.decay(lr)
            optimizer.step()
            reg.after_step(lr)
        steps_done = time.perf_counter()

        train_loss = evaluate(net, train_loss_rows, task, class_weights)["data_loss"]
        val_metrics = evaluate(net, val_split, task, class_weights) if val_split is not None else None
        l1_term, l2_term = (float(t) for t in reg.penalty_terms())
        for what, value in (("training data loss", train_loss), ("L1 term", l1_term), ("L2 term", l2_term)):
            if not math.isfinite(value):
                raise Diverged(epoch, what)
        evaluated = time.perf_counter()

        monitored = val_metrics["data_loss"] if val_metrics is not None else train_loss
        if monitored < progress.best_loss - (stopping.min_delta if stopping else 0.0):
            progress.best_loss, progress.best_epoch, progress.stale_epochs = monitored, epoch, 0
            if stopping is not None:
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            progress.stale_epochs += 1
        progress.stopped_early = stopping is not None and progress.stale_epochs >= stopping.patience

        layers, totals = stats.compute() if records_layers(epoch, cfg_train.epochs) else (None, stats.totals())
        reporter.on_epoch(
            EpochReport(
                epoch=epoch,
                epochs=cfg_train.epochs,
                train_data_loss=train_loss,
                l1_penalty=l1_term,
                l2_penalty=l2_term,
                validation=val_metrics,
                totals=totals,
                layers=layers,
                lr=lr,
                seconds=time.perf_counter() - epoch_started,
            )
        )
        epochs_run = epoch
        if checkpoint_path is not None or on_checkpoint is not None:
            saved_state = Checkpoint(
                epoch=epoch,
                net=net.state_dict(),
                optimizer=optimizer.state_dict(),
                rng=masks.get_state(),
                best_state=best_state,
                progress=progress.__dict__,
                histogram_edges=stats.edges,
            )
            if on_checkpoint is not None:
                on_checkpoint(saved_state.copy())
            elif checkpoint_path is not None:
                save_checkpoint(checkpoint_path, saved_state)
        reported = time.perf_counter()
        progress.seconds["steps"] += steps_done - epoch_started
        progress.seconds["evaluation"] += evaluated - steps_done
        progress.seconds["reporting"] += reported - evaluated

    if best_state is not None:
        net.load_state_dict(best_state)
    weights_epoch = progress.best_epoch if best_state is not None else epochs_run
    final_layers, totals = stats.compute()
    if best_state is not None or not records_layers(weights_epoch, cfg_train.epochs):
        # The kept weights' statistics must be stored even when the schedule skipped their epoch.
        reporter.on_layers(weights_epoch, final_layers)
    l1_term, l2_term = (float(t) for t in reg.penalty_terms())
    steps_seconds = progress.seconds["steps"]

    def final(split: Split) -> dict[str, Any]:
        return evaluate_fully(net, split, task, n_classes, class_weights)

    result = TrainingResult(
        epochs_run=epochs_run,
        best_epoch=progress.best_epoch,
        weights_epoch=weights_epoch,
        train=TrainMetrics(**final(train_split), l1_penalty=l1_term, l2_penalty=l2_term),
        validation=SplitMetrics(**final(val_split)) if val_split is not None else None,
        weights=weight_totals(totals),
        penalized=penalized_tensors(reg),
        device=device.type,
        seconds=time.perf_counter() - started,
        samples_per_second=(epochs_run - first_epoch + 1) * n_train / steps_seconds if steps_seconds > 0 else 0.0,
        timing=TrainingTiming(**{f"{k}_seconds": v for k, v in progress.seconds.items()}),
        test=SplitMetrics(**final(prepared.test)) if prepared.test is not None else None,
    )
    state = {name: t.detach().to("cpu").contiguous() for name, t in net.state_dict().items()}
    return TrainOutcome(result=result, state=state, prepared=prepared)
