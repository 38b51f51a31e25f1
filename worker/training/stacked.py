"""Training the network members of a study together: K members with the same shapes are stacked,
(K, out, in) weights applied with one batched matmul per layer, and trained in one pass, each with its
own penalties, learning rate, dropout rate and dropout generator. Member k ends with what
`engine.train(config_k, data, reporter, member=k)` ends with, float32 summation order aside.

What members share, and why a member equals its single-job twin (worker/training/randomness.py):
- A stack shares everything that decides the data and the shapes (`stack_key`): task, network shapes,
  training settings (seed, batch size, splits, precision, ...), exclude patterns, optimizer type and
  device. So the members see the same split, the same initial weights (drawn once from the seed, as the
  engine draws them) and the same batch order (`epoch_generator(seed, epoch)`).
- Per member: l1, l2, l1_method, weight_decay, max_norm, dropout rate, lr, momentum, betas, epochs and
  early stopping. A member that stops (its epochs, early stopping, divergence) keeps the weights it had
  then; the stack keeps stepping it (its numbers are no longer read), which costs time but no accuracy.
- Dropout: member k draws its masks from `dropout_generator(seed, k)`, in the order its twin draws them
  (layer by layer, each mask of shape (batch, width) from one 64-bit draw per two units); the twin of
  member k is the same spec trained with `member=k`. Member 0 is the plain job, so masks differ between
  members (different k) while the job itself is member 0.
- A stack of one member is not stacked: it runs the engine itself, so a study of one member equals the
  job bit for bit.

How per-member settings enter one pass: the data loss is the sum over members of each member's mean
loss, so each member's gradient is its own. Coupled L2 and subgradient L1 are added to the gradient,
decoupled weight decay multiplies the weights by a per-member factor, the proximal L1 step
soft-thresholds with the per-member threshold lr_k * l1_k, max-norm caps each member's rows at its own
norm, and SGD (with momentum), Adam and AdamW are written out on the stacked tensors with per-member lr,
momentum and betas, step for step as torch.optim's single-tensor implementations.

Networks: linear and MLP (batch norm included). Convolutional networks are not stacked: a group of
cnn members runs one member at a time through the engine.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from worker.training.config import ModelConfig, TrainConfig, TrainingConfig
from worker.training.data import ArrayDataset, PreparedData, Split, SplitRows, prepare
from worker.training.engine import (
    EVAL_CHUNK_ROWS,
    Canceled,
    Diverged,
    TrainOutcome,
    balanced_class_weights,
    batch_bounds,
    epoch_generator,
    evaluate,
    evaluate_fully,
    loss_sample,
    penalized_tensors,
    resolve_device,
    train,
    weight_totals,
)
from worker.training.networks import ACTIVATIONS, build_network
from worker.training.randomness import dropout_generator, init_generator
from worker.training.regularization import Regularizer, is_excluded
from worker.training.reporting import EpochReport
from worker.training.results import (
    SplitMetrics,
    TrainingResult,
    TrainingTiming,
    TrainMetrics,
)
from worker.training.statistics import NEAR_ZERO, WeightStatistics

# Adam's eps: torch.optim.Adam's default, which the engine uses.
ADAM_EPS = 1e-8
# BatchNorm's defaults (nn.BatchNorm1d), which the engine's networks use.
BATCH_NORM_MOMENTUM = 0.1
BATCH_NORM_EPS = 1e-5
STACKABLE_TYPES = ("linear", "mlp")
# The update runs over blocks of members this large (about four tensors of each member: weight,
# gradient, optimizer state), so that a block stays in a core's L2 cache (2 MiB on the 2-core Xeon this
# was tuned on) between the update's passes.
UPDATE_BLOCK_BYTES = 1 << 20


class StudyReporter(Protocol):
    def on_member_epoch(self, member: int, report: EpochReport) -> None:
        """Called once per finished epoch of each member still training, with the engine's numbers."""

    def on_member_layers(self, member: int, epoch: int, layers: list[dict[str, Any]]) -> None:
        """Per-layer statistics of a member's kept weights (stacked members report them only here)."""

    def should_stop(self) -> bool:
        """Checked at every step boundary: cheap (a flag)."""
        ...


class StudyRecorder:
    """Keeps every report, per member."""

    def __init__(self) -> None:
        self.reports: dict[int, list[EpochReport]] = {}
        self.layers: dict[int, dict[int, list[dict[str, Any]]]] = {}

    def on_member_epoch(self, member: int, report: EpochReport) -> None:
        self.reports.setdefault(member, []).append(report)
        if report.layers is not None:
            self.layers.setdefault(member, {})[report.epoch] = report.layers

    def on_member_layers(self, member: int, epoch: int, layers: list[dict[str, Any]]) -> None:
        self.layers.setdefault(member, {})[epoch] = layers

    def should_stop(self) -> bool:
        return False


@dataclass
class MemberOutcome:
    """A member's outcome: the engine's TrainOutcome (result, state with the engine's tensor names,
    prepared data), or the Diverged error that ended it."""

    member: int
    outcome: TrainOutcome | None
    error: Diverged | None = None


def stack_key(config: TrainConfig) -> tuple[Any, ...]:
    """Members with equal keys train in one stack; see the module docstring for what varies inside."""
    model: ModelConfig = dataclasses.replace(config.model, dropout=0.0)
    training: TrainingConfig = dataclasses.replace(config.training, epochs=0, early_stopping=None)
    return (config.task, model, config.regularization.exclude, config.optimizer.type, training, config.device)


def group_by_shape(members: list[TrainConfig]) -> list[list[int]]:
    """Indices of the members that can be stacked together, groups in order of first appearance."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, config in enumerate(members):
        groups.setdefault(stack_key(config), []).append(index)
    return list(groups.values())


def train_stacked(
    members: list[TrainConfig],
    data: ArrayDataset,
    reporter: StudyReporter | None = None,
    rows: SplitRows | None = None,
) -> list[MemberOutcome]:
    """Train every member; members are grouped by `group_by_shape` and the groups run one after another.
    Member k's dropout stream is (seed, k): its twin is `train(members[k], data, ..., member=k)`."""
    reporter = reporter or StudyRecorder()
    outcomes: dict[int, MemberOutcome] = {}
    for group in group_by_shape(members):
        if len(group) == 1 or members[group[0]].model.type not in STACKABLE_TYPES:
            for index in group:
                outcomes[index] = _train_alone(members[index], data, reporter, index, rows)
        else:
            for outcome in _StackedRun([members[i] for i in group], group, data, reporter, rows).run():
                outcomes[outcome.member] = outcome
    return [outcomes[i] for i in range(len(members))]


class _MemberReporter:
    """The engine's Reporter for one member, forwarding to the study's reporter."""

    def __init__(self, reporter: StudyReporter, member: int) -> None:
        self.reporter, self.member = reporter, member

    def on_epoch(self, report: EpochReport) -> None:
        self.reporter.on_member_epoch(self.member, report)

    def on_layers(self, epoch: int, layers: list[dict[str, Any]]) -> None:
        self.reporter.on_member_layers(self.member, epoch, layers)

    def should_stop(self) -> bool:
        return self.reporter.should_stop()


def _train_alone(
    config: TrainConfig, data: ArrayDataset, reporter: StudyReporter, member: int, rows: SplitRows | None = None
) -> MemberOutcome:
    try:
        return MemberOutcome(member, train(config, data, _MemberReporter(reporter, member), member=member, rows=rows))
    except Diverged as error:
        return MemberOutcome(member, None, error)


class _Outputs(nn.Module):
    """Serves one member's precomputed eval outputs, chunk by chunk, to the engine's `evaluate`, so
    that a stacked member's reported metrics are computed by the engine's own code."""

    def __init__(self, outputs: torch.Tensor) -> None:
        super().__init__()
        self.outputs, self.position = outputs, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.outputs[self.position : self.position + len(x)]
        self.position += len(x)
        return rows


def _latest(latest: list[tuple[Split, torch.Tensor]], split: Split) -> torch.Tensor | None:
    """The stacked outputs evaluated on this very split (the same object), if any."""
    return next((outputs for seen, outputs in latest if seen is split), None)


def _per_member(values: list[float], like: torch.Tensor, ndim: int) -> torch.Tensor:
    """A (K, 1, ..., 1) tensor of per-member values, rounded to the parameters' dtype once, as torch
    rounds a Python scalar it applies to a tensor."""
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, *([1] * (ndim - 1)))


@dataclass
class _Member:
    index: int
    config: TrainConfig
    generator: torch.Generator
    best_loss: float = math.inf
    best_epoch: int = 0
    stale_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    done: bool = False
    epochs_run: int = 0
    stopped_early: bool = False
    error: Diverged | None = None
    final_state: dict[str, torch.Tensor] = field(default_factory=dict)


class _StackedRun:
    def __init__(
        self,
        configs: list[TrainConfig],
        indices: list[int],
        data: ArrayDataset,
        reporter: StudyReporter,
        rows: SplitRows | None = None,
    ) -> None:
        self.started = time.perf_counter()
        base = configs[0]
        self.task, self.model_cfg, self.training = base.task, base.model, base.training
        self.reporter = reporter
        self.device = resolve_device(base.device)
        self.dtype = torch.float64 if self.training.precision == "float64" else torch.float32
        self.prepared: PreparedData = prepare(data, self.task, self.training, self.device, self.dtype, rows)
        train_split = self.prepared.train
        self.n_features = int(np.prod(train_split.X.shape[1:]))
        self.n_classes = len(self.prepared.class_labels or ())
        self.class_weights = None
        if self.training.class_weight == "balanced":
            if self.task != "classification":
                raise ValueError("training.class_weight applies to classification only")
            self.class_weights = balanced_class_weights(train_split.y, self.n_classes, self.dtype)
        self.members = [
            _Member(index, config, dropout_generator(self.training.seed, index, self.device))
            for index, config in zip(indices, configs, strict=True)
        ]
        k = len(self.members)

        # One network built as the engine builds it: every member starts from its weights.
        template = build_network(
            self.model_cfg, self.n_features, self.prepared.n_outputs, None, init_generator(self.training.seed)
        ).to(device=self.device, dtype=self.dtype)
        self.params: dict[str, torch.Tensor] = {
            name: p.detach().unsqueeze(0).repeat(k, *([1] * p.ndim)).requires_grad_(True)
            for name, p in template.named_parameters()
        }
        self.buffers: dict[str, torch.Tensor] = {
            name: b.detach().unsqueeze(0).repeat(k, *([1] * b.ndim)) for name, b in template.named_buffers()
        }
        exclude = base.regularization.exclude
        self.penalized = [name for name in self.params if not is_excluded(name, exclude)]
        self.state_names = list(template.state_dict())
        self.layers = self._layer_names()

        regs = [m.config.regularization for m in self.members]
        opts = [m.config.optimizer for m in self.members]
        self.optimizer_type = base.optimizer.type
        self.lrs = [o.lr for o in opts]
        self.coefficients: dict[str, dict[str, torch.Tensor | None]] = {}
        capped = any(r.max_norm is not None for r in regs)
        for name, p in self.params.items():
            penalized = name in self.penalized

            def per(values: list[float], p: torch.Tensor = p) -> torch.Tensor | None:
                return _per_member(values, p, p.ndim) if any(v != 0 for v in values) else None

            # Members without a max-norm cap get an infinite one.
            caps = [r.max_norm if r.max_norm is not None else math.inf for r in regs]
            subgradient = [r.l1 if r.l1_method == "subgradient" else 0.0 for r in regs]
            self.coefficients[name] = {
                "l2": per([r.l2 for r in regs]) if penalized else None,
                "l1_subgradient": per(subgradient) if penalized else None,
                "max_norm": _per_member(caps, p, p.ndim) if penalized and p.ndim >= 3 and capped else None,
            }
        proximal = [r.l1 if r.l1_method == "proximal" else 0.0 for r in regs]
        self.thresholds = [lr * l1 for lr, l1 in zip(self.lrs, proximal, strict=True)]
        self.decay_factors = [1.0 - lr * r.weight_decay for lr, r in zip(self.lrs, regs, strict=True)]
        self.momenta = [o.momentum for o in opts]
        self.betas = [o.betas for o in opts]
        self.optimizer_state: dict[str, dict[str, torch.Tensor]] = {name: {} for name in self.params}
        self.steps = 0
        self.dropout_rates = [m.config.model.dropout for m in self.members]
        # The engine's Dropout: P(int32 < threshold) = 1 - p; scale rounded as its torch.where rounds it.
        self.dropout_thresholds = torch.tensor(
            [round((1 - p) * 2**32) - 2**31 for p in self.dropout_rates], dtype=torch.int64, device=self.device
        ).view(-1, 1)
        scales = torch.tensor([1.0 / (1.0 - p) for p in self.dropout_rates], dtype=torch.float32)
        self.dropout_scales = scales.to(device=self.device).view(-1, 1)
        self.without_dropout = torch.tensor([p == 0 for p in self.dropout_rates], device=self.device).view(-1, 1)
        self.coefficient_cache: dict[tuple[tuple[float, ...], int], torch.Tensor] = {}

    # --- the network, stacked ------------------------------------------------------------------------

    def _layer_names(self) -> list[tuple[str, str | None, bool]]:
        """(linear prefix, norm prefix or None, hidden?) in forward order."""
        if self.model_cfg.type == "linear":
            return [("linear", None, False)]
        hidden = [
            (f"hidden.{i}.linear", f"hidden.{i}.norm" if self.model_cfg.batch_norm else None, True)
            for i in range(len(self.model_cfg.hidden_layers))
        ]
        return [*hidden, ("output", None, False)]

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        """(B, ...) rows shared by every member -> (K, B, outputs).

        Activations are kept as (K, width, B): each layer is W @ h with W as stored, (K, out, in), so
        that every weight's gradient comes out of the batched matmul in the weight's own layout (no
        transposed gradient to copy on accumulation)."""
        k = len(self.members)
        rows = len(x)
        h = x.flatten(1)
        activation = ACTIVATIONS[self.model_cfg.activation]()
        for position, (linear, norm, hidden) in enumerate(self.layers):
            weight, bias = self.params[f"{linear}.weight"], self.params[f"{linear}.bias"]
            if position == 0:
                # The rows are the same for every member: one matmul against all members' weights.
                h = torch.addmm(bias.reshape(-1, 1), weight.reshape(-1, weight.shape[-1]), h.T).view(k, -1, rows)
            else:
                h = torch.baddbmm(bias.unsqueeze(2), weight, h)
            if not hidden:
                continue
            if norm is not None:
                h = self._batch_norm(h, norm, training)
            h = activation(h)
            if training:
                h = self._dropout(h)
        return h.transpose(1, 2)

    def _batch_norm(self, h: torch.Tensor, prefix: str, training: bool) -> torch.Tensor:
        """Each member's channels normalized over the batch: one batch norm over K * C channels."""
        k, width, rows = h.shape
        mean, var = self.buffers[f"{prefix}.running_mean"], self.buffers[f"{prefix}.running_var"]
        out = F.batch_norm(
            h.reshape(k * width, rows).T,
            mean.view(-1),
            var.view(-1),
            self.params[f"{prefix}.weight"].reshape(-1),
            self.params[f"{prefix}.bias"].reshape(-1),
            training,
            BATCH_NORM_MOMENTUM,
            BATCH_NORM_EPS,
        )
        if training:
            self.buffers[f"{prefix}.num_batches_tracked"] += 1
        return out.T.reshape(k, width, rows)

    def _dropout(self, h: torch.Tensor) -> torch.Tensor:
        """Each member's mask from its own generator, drawn exactly as the engine's Dropout draws its
        (B, width) mask; members without dropout draw nothing and keep every unit."""
        k, width, rows = h.shape
        n = rows * width
        if not any(self.dropout_rates):
            return h
        if h.device.type == "cpu":
            bits = torch.zeros((k, (n + 1) // 2), dtype=torch.int64, device=h.device)
            for position, (member, p) in enumerate(zip(self.members, self.dropout_rates, strict=True)):
                if p > 0:
                    torch.randint(-(2**63), 2**63 - 1, ((n + 1) // 2,), generator=member.generator, out=bits[position])
            kept = (bits.view(torch.int32)[:, :n] < self.dropout_thresholds) | self.without_dropout
        else:
            # The engine's Dropout on an accelerator: float uniforms compared with p.
            kept = torch.ones((k, n), dtype=torch.bool, device=h.device)
            for position, (member, p) in enumerate(zip(self.members, self.dropout_rates, strict=True)):
                if p > 0:
                    kept[position] = torch.rand((n,), device=h.device, generator=member.generator) >= p
        factors = torch.where(kept, self.dropout_scales, 0.0).to(h.dtype)
        return h * factors.view(k, rows, width).transpose(1, 2)

    def data_loss_rows(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(K, B) per-row data loss from (K, B, outputs): the engine's `data_loss`, row by row."""
        k, rows = out.shape[0], out.shape[1]
        if self.task == "regression":
            return 0.5 * (out.squeeze(2) - y).square()
        if out.shape[2] == 1:
            losses = F.binary_cross_entropy_with_logits(
                out.squeeze(2), y.to(out.dtype).expand(k, rows), reduction="none"
            )
        else:
            losses = F.cross_entropy(out.reshape(k * rows, -1), y.repeat(k), reduction="none").view(k, rows)
        return losses * self.class_weights[y] if self.class_weights is not None else losses

    # --- one step ------------------------------------------------------------------------------------

    def coefficient(self, values: list[float], p: torch.Tensor) -> float | torch.Tensor:
        """One Python number when every member has the same value (torch's own scalar path), else a
        (K, 1, ..., 1) tensor."""
        if all(v == values[0] for v in values):
            return values[0]
        key = (tuple(values), p.ndim)
        if key not in self.coefficient_cache:
            self.coefficient_cache[key] = _per_member(values, p, p.ndim)
        return self.coefficient_cache[key]

    @torch.no_grad()
    def update(self) -> None:
        """Penalties into the gradient, decoupled decay, the optimizer step, proximal L1 and max-norm,
        in the engine's order (Regularizer.add_gradient_terms, decay, optimizer.step, after_step).
        Everything is in place (a parameter-sized temporary costs more than the arithmetic), a block of
        members at a time, so that a block's tensors stay in cache across the passes."""
        self.steps += 1
        adam = self.optimizer_type in ("adam", "adamw")
        for name, p in self.params.items():
            grad = p.grad
            assert grad is not None
            state = self.optimizer_state[name]
            first = not state
            if first and adam:
                state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
            elif first and any(self.momenta):
                state["momentum_buffer"] = torch.empty_like(p)
            c = self.step_coefficients(name, p, adam)
            block = max(1, UPDATE_BLOCK_BYTES // (4 * p[0].numel() * p.element_size()))
            for start in range(0, len(p), block):
                rows = slice(start, start + block)
                self._update_block(
                    p[rows],
                    grad[rows],
                    {key: tensor[rows] for key, tensor in state.items()},
                    {key: v[rows] if isinstance(v, (torch.Tensor, list)) else v for key, v in c.items()},
                    first,
                )

    def step_coefficients(self, name: str, p: torch.Tensor, adam: bool) -> dict[str, Any]:
        """This step's coefficients for one stacked tensor: None where a piece does not apply."""
        penalized = name in self.penalized
        fixed = self.coefficients[name]
        c: dict[str, Any] = {
            "l2": fixed["l2"],
            "l1_subgradient": fixed["l1_subgradient"],
            "max_norm": fixed["max_norm"],
            "decay": None,
            "threshold": None,
            "lr": self.coefficient(self.lrs, p),
            "momentum": self.coefficient(self.momenta, p) if any(self.momenta) else None,
        }
        if penalized and any(f != 1.0 for f in self.decay_factors):
            c["decay"] = self.coefficient(self.decay_factors, p)
        if penalized and any(self.thresholds):
            # One float, or one per member: the engine's softshrink, member by member.
            c["threshold"] = self.thresholds[0] if len(set(self.thresholds)) == 1 else list(self.thresholds)
        if adam:
            beta1 = [b[0] for b in self.betas]
            beta2 = [b[1] for b in self.betas]
            c["one_minus_beta1"] = self.coefficient([1 - b for b in beta1], p)
            c["beta2"] = self.coefficient(beta2, p)
            c["one_minus_beta2"] = self.coefficient([1 - b for b in beta2], p)
            # As torch computes them: Python floats of this step, rounded once when applied.
            corrections = [(1 - b**self.steps) ** 0.5 for b in beta2]
            step_sizes = [lr / (1 - b**self.steps) for lr, b in zip(self.lrs, beta1, strict=True)]
            for key, values in (("correction2", corrections), ("step_size", step_sizes)):
                c[key] = values[0] if len(set(values)) == 1 else _per_member(values, p, p.ndim)
        return c

    @staticmethod
    def _update_block(
        p: torch.Tensor,
        grad: torch.Tensor,
        state: dict[str, torch.Tensor],
        c: dict[str, Any],
        first: bool,
    ) -> None:
        if c["l2"] is not None:
            grad.addcmul_(p, c["l2"])
        if c["l1_subgradient"] is not None:
            grad.addcmul_(p.sign(), c["l1_subgradient"])
        if c["decay"] is not None:
            p.mul_(c["decay"])
        if "exp_avg" in state:
            # torch.optim.Adam's single-tensor step (AdamW's decay was applied just above).
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.lerp_(grad, c["one_minus_beta1"])
            if isinstance(c["one_minus_beta2"], float):
                exp_avg_sq.mul_(c["beta2"]).addcmul_(grad, grad, value=c["one_minus_beta2"])
            else:
                exp_avg_sq.mul_(c["beta2"]).addcmul_(grad * c["one_minus_beta2"], grad)
            denom = (exp_avg_sq.sqrt() / c["correction2"]).add_(ADAM_EPS)
            if isinstance(c["step_size"], float):
                p.addcdiv_(exp_avg, denom, value=-c["step_size"])
            else:
                p.sub_(exp_avg.div(denom).mul_(c["step_size"]))
        else:
            step = grad
            if "momentum_buffer" in state:
                buffer, momentum = state["momentum_buffer"], c["momentum"]
                if first:
                    buffer.copy_(grad)
                elif isinstance(momentum, float):
                    # buf <- momentum * buf + grad, in one pass over the buffer.
                    torch.add(grad, buffer, alpha=momentum, out=buffer)
                else:
                    torch.addcmul(grad, buffer, momentum, out=buffer)
                step = buffer
            if isinstance(c["lr"], float):
                p.add_(step, alpha=-c["lr"])
            else:
                p.addcmul_(step, c["lr"], value=-1)
        threshold = c["threshold"]
        if isinstance(threshold, float):
            p.copy_(F.softshrink(p, threshold))
        elif threshold is not None:
            for member, member_threshold in enumerate(threshold):
                if member_threshold > 0:
                    p[member].copy_(F.softshrink(p[member], member_threshold))
        cap = c["max_norm"]
        if cap is not None:
            # torch.renorm(w, 2, dim=0, maxnorm) for each member's (out, in) matrix.
            norms = torch.linalg.vector_norm(p, 2, dim=tuple(range(2, p.ndim)), keepdim=True)
            p.mul_(torch.where(norms > cap, cap / (norms + 1e-7), 1.0))

    # --- evaluation and reporting --------------------------------------------------------------------

    @torch.no_grad()
    def outputs(self, split: Split) -> torch.Tensor:
        """(K, N, outputs) in eval mode."""
        chunk = max(1, EVAL_CHUNK_ROWS // len(self.members))
        return torch.cat([self.forward(split.X[s : s + chunk], False) for s in range(0, len(split), chunk)], dim=1)

    def evaluate_members(self, split: Split, stacked: torch.Tensor) -> list[dict[str, float]]:
        """Each member's metrics from the stacked outputs (self.outputs) on `split`."""
        return [evaluate(_Outputs(stacked[i]), split, self.task, self.class_weights) for i in range(len(self.members))]

    @torch.no_grad()
    def totals(self) -> list[tuple[dict[str, float], float, float]]:
        """Per member: the weight totals (statistics.py's `totals`), the L1 term and the L2 term."""
        k = len(self.members)
        if not self.penalized:
            zero = {"count": 0, "l1_norm": 0.0, "l2_norm": 0.0, "max_abs": 0.0}
            return [(zero | {"zero_fraction": 0.0, "near_zero_fraction": 0.0}, 0.0, 0.0)] * k
        rows = []
        for name in self.penalized:
            w = self.params[name].detach().reshape(k, -1).to(torch.float64)
            a = w.abs()
            rows.append(
                torch.stack(
                    [
                        a.sum(1),
                        w.square().sum(1),
                        a.amax(1),
                        (w == 0).sum(1).to(w.dtype),
                        (a < NEAR_ZERO).sum(1).to(w.dtype),
                    ]
                )
            )
        l1_norm, sq_sum, max_abs, zeros, near = torch.stack(rows).permute(1, 0, 2).tolist()
        count = sum(self.params[name][0].numel() for name in self.penalized)
        result = []
        for i, member in enumerate(self.members):
            reg = member.config.regularization
            l1, sq = sum(row[i] for row in l1_norm), sum(row[i] for row in sq_sum)
            totals = {
                "count": count,
                "l1_norm": l1,
                "l2_norm": math.sqrt(sq),
                "max_abs": max(row[i] for row in max_abs),
                "zero_fraction": sum(row[i] for row in zeros) / count,
                "near_zero_fraction": sum(row[i] for row in near) / count,
            }
            result.append((totals, reg.l1 * l1, (reg.l2 / 2) * sq))
        return result

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        tensors = self.params | self.buffers
        return {name: tensors[name][i].detach().clone() for name in self.state_names}

    def live(self) -> Iterator[tuple[int, _Member]]:
        return ((i, m) for i, m in enumerate(self.members) if not m.done)

    # --- the loop ------------------------------------------------------------------------------------

    def run(self) -> list[MemberOutcome]:
        train_split, val_split = self.prepared.train, self.prepared.validation
        train_loss_rows = loss_sample(train_split, self.training.seed)
        n_train = len(train_split)
        batches = batch_bounds(n_train, self.training.batch_size, merge_single_row=self.model_cfg.batch_norm)
        last_epoch = max(m.config.training.epochs for m in self.members)
        seconds = {"steps": 0.0, "evaluation": 0.0, "reporting": 0.0}
        params = list(self.params.values())

        latest: list[tuple[Split, torch.Tensor]] = []
        for epoch in range(1, last_epoch + 1):
            if all(m.done for m in self.members):
                break
            epoch_started = time.perf_counter()
            order = torch.randperm(n_train, generator=epoch_generator(self.training.seed, epoch)).to(self.device)
            for start, stop in batches:
                if self.reporter.should_stop():
                    raise Canceled(epoch)
                rows = order[start:stop]
                for p in params:
                    p.grad = None
                out = self.forward(train_split.X[rows], training=True)
                # The sum of the members' mean losses: each member's gradient is its own mean loss's.
                loss = self.data_loss_rows(out, train_split.y[rows]).sum() / (stop - start)
                loss.backward()
                self.update()
            steps_done = time.perf_counter()

            # The outputs of the latest evaluation, by split: the final ones when no member's kept weights
            # differ from those (see below).
            latest = [(train_loss_rows, self.outputs(train_loss_rows))]
            if val_split is not None:
                latest.append((val_split, self.outputs(val_split)))
            train_losses = [r["data_loss"] for r in self.evaluate_members(*latest[0])]
            val_metrics = self.evaluate_members(*latest[1]) if val_split is not None else None
            totals = self.totals()
            evaluated = time.perf_counter()
            for i, member in list(self.live()):
                validation = val_metrics[i] if val_metrics is not None else None
                self._end_epoch(i, member, epoch, train_losses[i], validation, totals[i], epoch_started)
            reported = time.perf_counter()
            seconds["steps"] += steps_done - epoch_started
            seconds["evaluation"] += evaluated - steps_done
            seconds["reporting"] += reported - evaluated
        for i, member in list(self.live()):
            self._finish(i, member, member.epochs_run)
        unchanged = self.load_final_states()
        splits = {"train": train_split, "validation": val_split, "test": self.prepared.test}
        outputs: dict[str, torch.Tensor] = {}
        for name, split in splits.items():
            if split is not None:
                reused = _latest(latest, split) if unchanged else None
                outputs[name] = reused if reused is not None else self.outputs(split)
        return [self._outcome(i, member, seconds, outputs) for i, member in enumerate(self.members)]

    @torch.no_grad()
    def load_final_states(self) -> bool:
        """Each member's kept weights back into the stack, for one stacked forward pass per split. True when
        they are the stack's weights already (every member keeps its last epoch's): the last epoch's
        evaluation then holds the final outputs."""
        tensors = self.params | self.buffers
        unchanged = True
        for i, member in enumerate(self.members):
            for name, tensor in member.final_state.items():
                if unchanged and not torch.equal(tensors[name][i], tensor):
                    unchanged = False
                tensors[name][i].copy_(tensor)
        return unchanged

    def _end_epoch(
        self,
        i: int,
        member: _Member,
        epoch: int,
        train_loss: float,
        validation: dict[str, float] | None,
        totals: tuple[dict[str, float], float, float],
        epoch_started: float,
    ) -> None:
        """The engine's end of an epoch for one member: divergence, early stopping, the report."""
        weight_totals, l1_term, l2_term = totals
        for what, value in (("training data loss", train_loss), ("L1 term", l1_term), ("L2 term", l2_term)):
            if not math.isfinite(value):
                member.error, member.done = Diverged(epoch, what), True
                return
        stopping = member.config.training.early_stopping
        monitored = validation["data_loss"] if validation is not None else train_loss
        if monitored < member.best_loss - (stopping.min_delta if stopping else 0.0):
            member.best_loss, member.best_epoch, member.stale_epochs = monitored, epoch, 0
            if stopping is not None:
                member.best_state = self.member_state(i)
        else:
            member.stale_epochs += 1
        member.stopped_early = stopping is not None and member.stale_epochs >= stopping.patience
        self.reporter.on_member_epoch(
            member.index,
            EpochReport(
                epoch=epoch,
                epochs=member.config.training.epochs,
                train_data_loss=train_loss,
                l1_penalty=l1_term,
                l2_penalty=l2_term,
                validation=validation,
                totals=weight_totals,
                layers=None,
                lr=member.config.optimizer.lr,
                seconds=time.perf_counter() - epoch_started,
            ),
        )
        member.epochs_run = epoch
        if member.stopped_early or epoch >= member.config.training.epochs:
            self._finish(i, member, epoch)

    def _finish(self, i: int, member: _Member, epoch: int) -> None:
        member.final_state = member.best_state if member.best_state is not None else self.member_state(i)
        member.done = True

    def _outcome(
        self, i: int, member: _Member, seconds: dict[str, float], outputs: dict[str, torch.Tensor]
    ) -> MemberOutcome:
        """The engine's result for one member, computed by the engine's functions: statistics and
        penalties on a network that holds the member's weights, metrics on its stacked outputs."""
        if member.error is not None:
            return MemberOutcome(member.index, None, member.error)
        config = member.config
        net = build_network(
            config.model, self.n_features, self.prepared.n_outputs, None, init_generator(self.training.seed)
        ).to(device=self.device, dtype=self.dtype)
        net.load_state_dict(member.final_state)
        reg = Regularizer(net, config.regularization, optimizer_decays=config.optimizer.type == "adamw")
        stats = WeightStatistics(net, reg.penalized_names)
        weights_epoch = member.best_epoch if member.best_state is not None else member.epochs_run
        final_layers, totals = stats.compute()
        self.reporter.on_member_layers(member.index, weights_epoch, final_layers)
        l1_term, l2_term = (float(t) for t in reg.penalty_terms())

        prepared = self.prepared

        def final(name: str, split: Split) -> dict[str, Any]:
            return evaluate_fully(_Outputs(outputs[name][i]), split, self.task, self.n_classes, self.class_weights)

        steps_seconds = seconds["steps"]
        result = TrainingResult(
            epochs_run=member.epochs_run,
            best_epoch=member.best_epoch,
            weights_epoch=weights_epoch,
            train=TrainMetrics(**final("train", prepared.train), l1_penalty=l1_term, l2_penalty=l2_term),
            validation=SplitMetrics(**final("validation", prepared.validation))
            if prepared.validation is not None
            else None,
            weights=weight_totals(totals),
            penalized=penalized_tensors(reg),
            device=self.device.type,
            seconds=time.perf_counter() - self.started,
            samples_per_second=member.epochs_run * len(prepared.train) / steps_seconds if steps_seconds > 0 else 0.0,
            timing=TrainingTiming(**{f"{k}_seconds": v for k, v in seconds.items()}),
            test=SplitMetrics(**final("test", prepared.test)) if prepared.test is not None else None,
        )
        state = {name: t.detach().to("cpu").contiguous() for name, t in net.state_dict().items()}
        return MemberOutcome(member.index, TrainOutcome(result=result, state=state, prepared=prepared))


__all__ = [
    "MemberOutcome",
    "StudyRecorder",
    "StudyReporter",
    "group_by_shape",
    "stack_key",
    "train_stacked",
]
