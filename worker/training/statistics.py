"""Per-tensor weight statistics, as the README defines them, computed on the tensors' device in
float64 with one host transfer per call."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

# |w| below this counts as near zero; the gap to zero_fraction tells whether sparsity is real.
NEAR_ZERO = 1e-3
# An odd count puts 0 at the centre of a bin, so exact zeros are not split across two bins.
HISTOGRAM_BINS = 31
# Edges are fixed at the first epoch with this much room for weights to grow; values beyond the
# edges are counted in the outermost bins.
HISTOGRAM_HEADROOM = 1.5

TOTALS = ("l1_norm", "sq_sum", "max_abs", "zeros", "near_zeros")


def _totals_row(w: torch.Tensor) -> list[torch.Tensor]:
    a = w.abs()
    return [a.sum(), w.square().sum(), a.max(), (w == 0).sum().to(w.dtype), (a < NEAR_ZERO).sum().to(w.dtype)]


def _summarize(rows: list[tuple[int, dict[str, float]]]) -> dict[str, float]:
    """Totals over the penalized tensors (the weights the objective's sums run over)."""
    count = sum(n for n, _ in rows)
    if count == 0:
        return {
            "count": 0,
            "l1_norm": 0.0,
            "l2_norm": 0.0,
            "max_abs": 0.0,
            "zero_fraction": 0.0,
            "near_zero_fraction": 0.0,
        }
    return {
        "count": count,
        "l1_norm": sum(v["l1_norm"] for _, v in rows),
        "l2_norm": math.sqrt(sum(v["sq_sum"] for _, v in rows)),
        "max_abs": max(v["max_abs"] for _, v in rows),
        "zero_fraction": sum(v["zeros"] for _, v in rows) / count,
        "near_zero_fraction": sum(v["near_zeros"] for _, v in rows) / count,
    }


class WeightStatistics:
    def __init__(self, net: nn.Module, penalized_names: frozenset[str]) -> None:
        self.named = list(net.named_parameters())
        self.penalized = [(name, p) for name, p in self.named if name in penalized_names]
        self.penalized_names = penalized_names
        self.edges: dict[str, list[float]] = {}

    @torch.no_grad()
    def totals(self) -> dict[str, float]:
        """Only the totals: cheap enough for every epoch."""
        if not self.penalized:
            return _summarize([])
        rows = torch.stack([torch.stack(_totals_row(p.detach().to(torch.float64))) for _, p in self.penalized])
        values = rows.cpu().tolist()
        return _summarize(
            [(p.numel(), dict(zip(TOTALS, v, strict=True))) for (_, p), v in zip(self.penalized, values, strict=True)]
        )

    @torch.no_grad()
    def compute(self) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """Every statistic of every parameter tensor, and the totals."""
        scalar_rows, histograms = [], []
        for name, p in self.named:
            w = p.detach().to(torch.float64)
            if name not in self.edges:
                top = float(w.abs().max()) * HISTOGRAM_HEADROOM or NEAR_ZERO
                self.edges[name] = torch.linspace(-top, top, HISTOGRAM_BINS + 1).tolist()
            low, high = self.edges[name][0], self.edges[name][-1]
            histograms.append(torch.histc(w.clamp(low, high), HISTOGRAM_BINS, low, high))
            nan = torch.tensor(math.nan, dtype=torch.float64, device=w.device)
            if w.ndim >= 2:
                units = w.reshape(w.shape[0], -1)
                dead = (units.abs().sum(dim=1) == 0).sum().to(torch.float64)
                spectral = torch.linalg.matrix_norm(units, ord=2)
            else:
                dead, spectral = nan, nan
            std = w.std(correction=0) if w.numel() > 1 else torch.zeros_like(nan)
            scalar_rows.append(torch.stack([*_totals_row(w), w.mean(), std, dead, spectral]))
        scalars = torch.stack(scalar_rows).cpu().tolist()
        counts = torch.stack(histograms).cpu().to(torch.int64).tolist()

        layers: list[dict[str, Any]] = []
        penalized_rows = []
        for (name, p), row, hist in zip(self.named, scalars, counts, strict=True):
            values = dict(zip((*TOTALS, "mean", "std", "dead_units", "spectral_norm"), row, strict=True))
            n = p.numel()
            if name in self.penalized_names:
                penalized_rows.append((n, values))
            layers.append(
                {
                    "name": name,
                    "penalized": name in self.penalized_names,
                    "shape": list(p.shape),
                    "count": n,
                    "l1_norm": values["l1_norm"],
                    "l2_norm": math.sqrt(values["sq_sum"]),
                    "max_abs": values["max_abs"],
                    "mean": values["mean"],
                    "std": values["std"],
                    "zero_fraction": values["zeros"] / n,
                    "near_zero_fraction": values["near_zeros"] / n,
                    "dead_units": None if p.ndim < 2 else int(values["dead_units"]),
                    "spectral_norm": None if p.ndim < 2 else values["spectral_norm"],
                    "histogram": {"edges": self.edges[name], "counts": hist},
                }
            )
        return layers, _summarize(penalized_rows)
