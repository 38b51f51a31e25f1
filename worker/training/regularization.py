"""The penalties of the objective J(w) = mean loss + l1 * sum|w| + (l2 / 2) * sum w^2, applied to the
penalized tensors only, and the post-step operators (proximal L1, max-norm).

Where each piece acts in a step:
  gradient:    + l2 * w (coupled L2; with SGD this is exactly torch's weight_decay=l2)
               + l1 * sign(w) (subgradient L1 only)
  before step: w <- w * (1 - lr * weight_decay) (decoupled decay; AdamW applies it itself)
  after step:  w <- sign(w) * max(|w| - lr * l1, 0) (proximal L1: exact zeros)
               each unit's incoming weight vector rescaled to norm <= max_norm
With Adam and AdamW the proximal step uses the same threshold lr * l1: it is the proximal operator of
the L1 term for a plain step of size lr applied after the adaptive step, not a per-coordinate
(preconditioned) proximal step, so the zeros are exact but the amount of shrinkage does not follow
Adam's per-coordinate step sizes.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import torch
from torch import nn
from torch.nn import functional as F

from worker.training.config import RegularizationConfig


def is_excluded(name: str, patterns: tuple[str, ...]) -> bool:
    """A pattern excludes a tensor when it occurs in the tensor's name (`bias`) or matches the
    whole name as a glob (`hidden.0.*`)."""
    return any(pattern in name or fnmatchcase(name, pattern) for pattern in patterns)


class Regularizer:
    def __init__(self, net: nn.Module, cfg: RegularizationConfig, optimizer_decays: bool) -> None:
        self.cfg = cfg
        self.penalized: list[tuple[str, nn.Parameter]] = [
            (name, p) for name, p in net.named_parameters() if not is_excluded(name, cfg.exclude)
        ]
        self.params: list[torch.Tensor] = [p for _, p in self.penalized]
        self.penalized_names = frozenset(name for name, _ in self.penalized)
        # Max-norm caps a unit's incoming weights: rows of a matrix, filters of a convolution.
        self.unit_weights = [p for p in self.params if p.ndim >= 2]
        self.optimizer_decays = optimizer_decays

    @property
    def adds_to_gradient(self) -> bool:
        return self.cfg.l2 > 0 or (self.cfg.l1 > 0 and self.cfg.l1_method == "subgradient")

    def penalty_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(l1 * sum|w|, (l2 / 2) * sum w^2) as 0-d tensors on the parameters' device."""
        if not self.params:
            zero = torch.zeros(())
            return zero, zero
        # Summed in float64, as the weight statistics are, so that the terms equal l1 * l1_norm exactly.
        with torch.no_grad():
            l1_sum = torch.stack([p.abs().sum(dtype=torch.float64) for p in self.params]).sum()
            sq_sum = torch.stack([p.square().sum(dtype=torch.float64) for p in self.params]).sum()
        return self.cfg.l1 * l1_sum, (self.cfg.l2 / 2) * sq_sum

    @torch.no_grad()
    def add_gradient_terms(self) -> None:
        if not self.adds_to_gradient:
            return
        pairs = [(p, p.grad) for p in self.params if p.grad is not None]
        if not pairs:
            return
        params: list[torch.Tensor] = [p for p, _ in pairs]
        grads = [g for _, g in pairs]
        if self.cfg.l2 > 0:
            torch._foreach_add_(grads, params, alpha=self.cfg.l2)
        if self.cfg.l1 > 0 and self.cfg.l1_method == "subgradient":
            torch._foreach_add_(grads, torch._foreach_sign(params), alpha=self.cfg.l1)

    @torch.no_grad()
    def decay(self, lr: float) -> None:
        if self.cfg.weight_decay > 0 and not self.optimizer_decays and self.params:
            torch._foreach_mul_(self.params, 1.0 - lr * self.cfg.weight_decay)

    @torch.no_grad()
    def after_step(self, lr: float) -> None:
        if self.cfg.l1 > 0 and self.cfg.l1_method == "proximal":
            threshold = lr * self.cfg.l1
            for p in self.params:
                p.copy_(F.softshrink(p, threshold))
        if self.cfg.max_norm is not None:
            for w in self.unit_weights:
                w.copy_(torch.renorm(w, p=2, dim=0, maxnorm=self.cfg.max_norm))
