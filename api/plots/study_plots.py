"""A study's plots: the cross-validation curve against the penalty (glmnet's plot.cv.glmnet), the
coefficient paths (plot.glmnet) and the comparison of variants, each with ±1 standard error.

Each data series carries an SVG id `series-<name>`; the chosen members' lines are `line-min` and
`line-1se`, the top axis of nonzero counts is `nonzero-axis`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from api.plots.render import legend_if_several, name_errorbars, new_figure, slug

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Top-axis ticks spread along the penalty grid (the chosen members' penalties come on top of these).
TOP_TICKS = 7
# Features named in a path panel's legend: those with the largest coefficients at the weakest penalty.
LEGEND_FEATURES = 10
CHOICE_STYLE = {"line-min": ("--", "0.15"), "line-1se": (":", "0.15")}


@dataclass(frozen=True)
class ScoredPoint:
    penalty: float
    mean: float
    standard_error: float | None
    nonzero: int | None


@dataclass(frozen=True)
class CvGroup:
    """Members that differ only in the penalty (one l1_ratio, one variant), by increasing penalty.
    `label` is empty when the study has only one such group."""

    label: str
    points: list[ScoredPoint]
    unpenalized: ScoredPoint | None = None


@dataclass(frozen=True)
class Choice:
    """A chosen member's penalty, drawn as a vertical line; `gid` is `line-min` or `line-1se`."""

    penalty: float
    label: str
    gid: str


@dataclass(frozen=True)
class PathPanel:
    l1_ratio: float
    alphas: list[float]
    coefficients: list[list[float]]
    choices: list[Choice] = field(default_factory=list)


@dataclass(frozen=True)
class VariantScore:
    label: str
    mean: float
    standard_error: float | None


def _choice_lines(axes: Axes, choices: list[Choice]) -> None:
    for choice in choices:
        style, color = CHOICE_STYLE.get(choice.gid, ("--", "0.15"))
        axes.axvline(
            math.log10(choice.penalty), color=color, linestyle=style, linewidth=1.2, label=choice.label, gid=choice.gid
        )


def _top_ticks(penalties: list[float], choices: list[Choice]) -> list[int]:
    """Indexes of the grid points to label on the top axis: a few spread evenly, the chosen ones, and
    none so close to a chosen one that the labels collide."""
    count = len(penalties)
    if count <= TOP_TICKS + 1:
        return list(range(count))
    logs = [math.log10(p) for p in penalties]
    span = (max(logs) - min(logs)) or 1.0
    chosen = {min(range(count), key=lambda i: abs(logs[i] - math.log10(c.penalty))) for c in choices}
    spread = {round(i * (count - 1) / (TOP_TICKS - 1)) for i in range(TOP_TICKS)}
    kept = {i for i in spread if all(i == c or abs(logs[i] - logs[c]) > 0.06 * span for c in chosen)}
    return sorted(kept | chosen)


def _nonzero_axis(
    axes: Axes, penalties: list[float], nonzero: list[int], label: str, choices: list[Choice], gid: str
) -> None:
    """glmnet's top axis: the number of nonzero coefficients at penalties of the grid."""
    ticks = _top_ticks(penalties, choices)
    top = axes.secondary_xaxis("top")
    top.set_gid(gid)
    top.set_xticks([math.log10(penalties[i]) for i in ticks], labels=[str(nonzero[i]) for i in ticks])
    top.set_xlabel(label)


def cv_curve(
    title: str,
    groups: list[CvGroup],
    axis: str,
    score: str,
    choices: list[Choice],
    reference: CvGroup | None,
) -> Figure:
    """Mean held-out score against log10(penalty), ±1 standard error, one series per group; vertical
    lines at the chosen members; on top, the nonzero coefficients of the `reference` group."""
    figure = new_figure(8, 5.5)
    axes = figure.add_subplot()
    for number, group in enumerate(groups):
        color = f"C{number % 10}"
        name = slug(group.label) if group.label else "cv"
        x = [math.log10(p.penalty) for p in group.points]
        errors = [p.standard_error if p.standard_error is not None else math.nan for p in group.points]
        has_errors = any(not math.isnan(e) for e in errors)
        container = axes.errorbar(
            x,
            [p.mean for p in group.points],
            yerr=errors if has_errors else None,
            fmt="o-",
            markersize=3,
            linewidth=1.2,
            capsize=2,
            elinewidth=0.8,
            color=color,
            label=group.label or ("mean ± 1 SE" if has_errors else "score"),
        )
        name_errorbars(container, name)
        if group.unpenalized is not None:
            axes.axhline(
                group.unpenalized.mean,
                color=color,
                linestyle="-.",
                linewidth=0.9,
                label=f"{group.label + ': ' if group.label else ''}{axis} = 0 (no penalty)",
                gid=f"series-{name}-unpenalized",
            )
    _choice_lines(axes, choices)
    if reference is not None:
        known = [p for p in reference.points if p.nonzero is not None]
        if known:
            label = "nonzero coefficients" + (f" ({reference.label})" if reference.label and len(groups) > 1 else "")
            nonzero = [p.nonzero or 0 for p in known]
            _nonzero_axis(axes, [p.penalty for p in known], nonzero, label, choices, "nonzero-axis")
    axes.set_xlabel(f"log10({axis})   (stronger regularization →)")
    axes.set_ylabel(score)
    axes.set_title(title)
    legend_if_several(axes, loc="best")
    return figure


def coefficient_paths(title: str, features: list[str], panels: list[PathPanel], axis: str, coefficient: str) -> Figure:
    """Each coefficient against log10(penalty), one panel per l1_ratio, with the nonzero count on top."""
    import numpy as np

    columns = min(2, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = new_figure(7.5 * columns, 4.8 * rows + 0.4)
    for index, panel in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        x = np.log10(np.array(panel.alphas, dtype=np.float64))
        coefficients = np.array(panel.coefficients, dtype=np.float64).reshape(len(features), len(panel.alphas))
        weakest = int(np.argmin(x))
        named = set(np.argsort(-np.abs(coefficients[:, weakest]), kind="stable")[:LEGEND_FEATURES].tolist())
        ratio = f"{panel.l1_ratio:g}"
        for number, feature in enumerate(features):
            axes.plot(
                x,
                coefficients[number],
                linewidth=1.2,
                color=f"C{number % 10}",
                label=feature if number in named else None,
                gid=f"series-{slug(feature)}-l1_ratio-{ratio}",
            )
        axes.axhline(0, color="0.5", linewidth=0.6)
        _choice_lines(axes, panel.choices)
        order = np.argsort(x, kind="stable")
        penalties = [panel.alphas[i] for i in order]
        nonzero = [int(np.count_nonzero(coefficients[:, i])) for i in order]
        _nonzero_axis(axes, penalties, nonzero, "nonzero coefficients", panel.choices, f"nonzero-axis-l1_ratio-{ratio}")
        kind = " (lasso)" if panel.l1_ratio == 1 else ""
        axes.set_title(f"l1_ratio = {ratio}{kind}")
        axes.set_xlabel(f"log10({axis})   (stronger regularization →)")
        axes.set_ylabel(coefficient)
        truncated = len(features) > LEGEND_FEATURES
        legend_if_several(
            axes,
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            fontsize=8,
            title=f"{LEGEND_FEATURES} of {len(features)} features (largest)" if truncated else None,
            title_fontsize=8,
        )
    figure.suptitle(title)
    return figure


def variants(title: str, rows: list[VariantScore], best: int, score: str, what: str) -> Figure:
    """Each variant's (or member's) mean score with ±1 standard error, first on top; the best is marked
    and the band within one standard error of it is shaded."""
    figure = new_figure(8, max(3.5, 0.4 * len(rows) + 1.8))
    axes = figure.add_subplot()
    positions = list(range(len(rows) - 1, -1, -1))
    for number, (row, y) in enumerate(zip(rows, positions, strict=True)):
        container = axes.errorbar(
            [row.mean],
            [y],
            xerr=[row.standard_error] if row.standard_error is not None else None,
            fmt="o",
            markersize=6,
            capsize=4,
            color="C0",
            label="mean ± 1 SE" if number == 0 else None,
        )
        name_errorbars(container, slug(row.label))
    chosen = rows[best]
    if chosen.standard_error is not None:
        axes.axvspan(
            chosen.mean - chosen.standard_error,
            chosen.mean + chosen.standard_error,
            color="C2",
            alpha=0.12,
            linewidth=0,
            label="within 1 SE of the best",
            gid="best-band",
        )
    axes.plot(
        [chosen.mean],
        [positions[best]],
        linestyle="none",
        marker="*",
        markersize=15,
        color="C3",
        label=f"best: {chosen.label}",
        gid="best-marker",
    )
    axes.set_yticks(positions, labels=[row.label for row in rows])
    axes.set_ylim(-0.7, len(rows) - 0.3)
    axes.set_xlabel(score)
    axes.set_ylabel(what)
    axes.set_title(title)
    legend_if_several(axes, loc="best")
    return figure
