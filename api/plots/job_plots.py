"""A job's plots, drawn from what its worker recorded per epoch: the data loss on the training and
validation rows (the overfitting gap between them), the objective's penalty terms, how many weights
are zero, and the per-layer weight histograms at one epoch.

Each data series carries an SVG id `series-<name>`, so that people and tests can find it in the SVG."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from api.plots.render import integer_epochs, legend_if_several, new_figure, slug

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TRAINING, VALIDATION, L1, L2, EXACT, NEAR, WEIGHTS = "C0", "C3", "C2", "C4", "C1", "C9", "C0"
# A loss whose largest value is this many times its smallest is drawn on a log scale.
WIDE_RANGE = 30
# Markers on each epoch while they can still be told apart.
MARKED_EPOCHS = 40


@dataclass(frozen=True)
class EpochCurves:
    """Per-epoch values, in epoch order; `val_data_loss` entries are None without a validation split."""

    epochs: list[int]
    train_data_loss: list[float]
    val_data_loss: list[float | None]
    l1_penalty: list[float]
    l2_penalty: list[float]
    zero_fraction: list[float]
    near_zero_fraction: list[float]


@dataclass(frozen=True)
class BestEpoch:
    epoch: int
    label: str


@dataclass(frozen=True)
class LayerHistogram:
    name: str
    shape: list[int]
    penalized: bool
    zero_fraction: float
    near_zero_fraction: float
    edges: list[float]
    counts: list[int]


def _marker(curves: EpochCurves) -> str | None:
    return "o" if len(curves.epochs) <= MARKED_EPOCHS else None


def learning_curves(title: str, curves: EpochCurves, loss: str, best: BestEpoch | None) -> Figure:
    """Training and validation data loss against epoch; the gap where validation is above training is
    shaded, and the epoch early stopping kept is marked."""
    import numpy as np

    figure = new_figure(8, 5)
    axes = figure.add_subplot()
    epochs = np.array(curves.epochs, dtype=np.float64)
    train = np.array(curves.train_data_loss, dtype=np.float64)
    validation = np.array([math.nan if v is None else v for v in curves.val_data_loss], dtype=np.float64)
    style: dict[str, Any] = {"marker": _marker(curves), "markersize": 3, "linewidth": 1.5}
    axes.plot(epochs, train, color=TRAINING, label="training", gid="series-training", **style)
    if np.isfinite(validation).any():
        axes.plot(epochs, validation, color=VALIDATION, label="validation", gid="series-validation", **style)
        above = np.isfinite(validation) & (validation > train)
        if above.any():
            axes.fill_between(
                epochs,
                train,
                np.where(np.isfinite(validation), validation, train),
                where=above,
                interpolate=True,
                color=VALIDATION,
                alpha=0.15,
                linewidth=0,
                label="overfitting gap (validation above training)",
                gid="overfitting-gap",
            )
    if best is not None:
        axes.axvline(best.epoch, color="0.25", linestyle="--", linewidth=1, label=best.label, gid="best-epoch")
    finite = np.concatenate([train, validation[np.isfinite(validation)]])
    # A loss that falls by orders of magnitude flattens on a linear axis, hiding the gap at the end.
    logarithmic = bool((finite > 0).all() and finite.max() > WIDE_RANGE * finite.min())
    if logarithmic:
        axes.set_yscale("log")
    _epoch_axis(axes)
    axes.set_ylabel(f"data loss: {loss}" + (", log scale" if logarithmic else ""))
    axes.set_title(title)
    integer_epochs(axes)
    # Even alone, the training curve is named: the data it was measured on is the point of the plot.
    axes.legend(loc="best")
    return figure


def penalty_terms(title: str, curves: EpochCurves, l1: float, l2: float) -> Figure:
    """The objective's penalty terms against epoch, as the worker computed them (only those whose
    strength is above 0: the other is 0 at every epoch)."""
    figure = new_figure(8, 5)
    axes = figure.add_subplot()
    style: dict[str, Any] = {"marker": _marker(curves), "markersize": 3, "linewidth": 1.5}
    if l1 > 0:
        label = f"L1 term  l1·Σ|w|  (l1 = {l1:g})"
        axes.plot(curves.epochs, curves.l1_penalty, color=L1, label=label, gid="series-l1-term", **style)
    if l2 > 0:
        label = f"L2 term  (l2/2)·Σw²  (l2 = {l2:g})"
        axes.plot(curves.epochs, curves.l2_penalty, color=L2, label=label, gid="series-l2-term", **style)
    _epoch_axis(axes)
    axes.set_ylabel("penalty term (units of the data loss)")
    axes.set_title(title)
    integer_epochs(axes)
    # Even for one term: the legend gives its formula and strength.
    axes.legend(loc="best")
    return figure


def sparsity(title: str, curves: EpochCurves, near_zero: float) -> Figure:
    """The share of penalized weights that are exactly zero and that are near zero, against epoch."""
    figure = new_figure(8, 5)
    axes = figure.add_subplot()
    style: dict[str, Any] = {"marker": _marker(curves), "markersize": 3, "linewidth": 1.5}
    exact = [100 * f for f in curves.zero_fraction]
    near = [100 * f for f in curves.near_zero_fraction]
    axes.plot(
        curves.epochs, near, color=NEAR, label=f"near zero (|w| < {near_zero:g})", gid="series-near-zero", **style
    )
    axes.plot(curves.epochs, exact, color=EXACT, label="exactly zero", gid="series-exactly-zero", **style)
    # Scaled to the data (a few percent must not look like none), never past 100%.
    peak = max([*exact, *near, 1.0])
    axes.set_ylim(-0.02 * min(1.15 * peak, 100), min(1.15 * peak, 100) * 1.02)
    _epoch_axis(axes)
    axes.set_ylabel("share of penalized weights (%)")
    axes.set_title(title)
    integer_epochs(axes)
    legend_if_several(axes, loc="best")
    return figure


def weight_histograms(title: str, layers: list[LayerHistogram]) -> Figure:
    """One histogram per parameter tensor, titled with its name, shape and share of zeros."""
    from matplotlib.ticker import MaxNLocator

    columns = min(3, len(layers))
    rows = math.ceil(len(layers) / columns)
    figure = new_figure(4.2 * columns, 3.2 * rows + 0.5)
    for index, layer in enumerate(layers):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.stairs(layer.counts, layer.edges, fill=True, color=WEIGHTS, alpha=0.8, gid=f"series-{slug(layer.name)}")
        shape = "\u00d7".join(str(size) for size in layer.shape)
        penalized = "" if layer.penalized else ", not penalized"
        axes.set_title(
            f"{layer.name} [{shape}]\n{100 * layer.zero_fraction:.1f}% zero, "
            f"{100 * layer.near_zero_fraction:.1f}% near zero{penalized}",
            fontsize=9,
        )
        axes.set_xlabel("weight value")
        axes.set_ylabel("weights per bin (count)")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(title)
    return figure


def _epoch_axis(axes: Any) -> None:
    """Epochs are whole numbers: ticks only at whole epochs, also when a single epoch is recorded."""
    from matplotlib.ticker import MaxNLocator

    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
