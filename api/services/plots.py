"""Plot use cases: a job's or a study's recorded numbers, read for the caller's tenant (another tenant's
id is as unknown as a made-up one), checked, and drawn by api/plots as SVG or PNG.

A queued or running job or study is plotted with what it has recorded so far; a plot is refused (409,
with a sentence) only where there is nothing to draw yet, or where it does not apply (a penalty plot of
a job without penalties, a CV curve of a study whose grid has no penalty, paths of a study without
path-solved linear members)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.plots import ImageFormat, JobPlot, StudyPlot, job_plots, study_plots
from api.plots.job_plots import BestEpoch, EpochCurves, LayerHistogram
from api.plots.render import Image, render
from api.plots.study_plots import Choice, CvGroup, PathPanel, ScoredPoint, VariantScore
from api.schemas.study import LOWER_IS_BETTER, PathRead
from api.services.jobs import get_job
from api.services.studies import get_study
from core.errors import Conflict, InvalidInput, NotFound
from models import EpochMetric, Job, JobStatus, LayerStat, StudyMember

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The bound of the near-zero share the worker records (LayerRead.near_zero_fraction: |w| < 1e-3).
NEAR_ZERO = 1e-3
# The grid axes a CV curve can run along, in the order the worker picks the one its 1-SE rule follows.
PENALTY_AXES = ("regularization.elastic_net.alpha", "regularization.l1", "regularization.l2")
UNFINISHED = (JobStatus.QUEUED, JobStatus.RUNNING)
METRICS = {
    "mse": "mean squared error (target units²)",
    "rmse": "root mean squared error (target units)",
    "mae": "mean absolute error (target units)",
    "r2": "R² (share of variance explained)",
    "accuracy": "accuracy (share classified right)",
    "balanced_accuracy": "balanced accuracy (mean recall per class)",
    "log_loss": "log loss (nats)",
}
# A study without variants compares its members; past this many, only the best ones.
MEMBER_ROWS = 25
# Epochs named in full when a sentence lists them; longer lists keep their ends.
LISTED_EPOCHS = 12


def job_plot(
    session: Session, tenant_id: str, job_id: str, plot: JobPlot, image_format: ImageFormat, epoch: int | None
) -> Image:
    """One of a job's plots, drawn from its recorded epochs (for `weights`, at `epoch`)."""
    draw = _job_figure(session, get_job(session, tenant_id, job_id), plot, epoch)
    # Everything is read: the connection goes back to the pool while the figure is drawn.
    session.rollback()
    return render(draw, image_format)


def study_plot(session: Session, tenant_id: str, study_id: str, plot: StudyPlot, image_format: ImageFormat) -> Image:
    """One of a study's plots, drawn from its members' scores so far (paths: once it has finished)."""
    study = get_study(session, tenant_id, study_id)
    members = list(
        session.scalars(select(StudyMember).where(StudyMember.study_id == study.id).order_by(StudyMember.position))
    )
    if plot is StudyPlot.PATHS:
        draw = _paths(study, members)
    elif plot is StudyPlot.CV_CURVE:
        draw = _cv_curve(study, members)
    else:
        draw = _variants(study, members)
    session.rollback()
    return render(draw, image_format)


# Jobs


def _job_name(job: Job) -> str:
    return f"job {job.name!r}" if job.name else f"job {job.id}"


def _nothing_yet(job: Job, what: str) -> Conflict:
    if job.status in UNFINISHED:
        return Conflict(
            f"Job {job.id} is {job.status} and has recorded no {what} yet; they appear after its first epoch."
        )
    return Conflict(f"Job {job.id} is {job.status} and recorded no {what}, so there is nothing to plot.")


def _job_figure(session: Session, job: Job, plot: JobPlot, epoch: int | None) -> Callable[[], Figure]:
    if plot is JobPlot.WEIGHTS:
        return _weights(session, job, epoch)
    if epoch is not None:
        raise InvalidInput(
            f"epoch chooses the epoch of the weights plot; {plot.value} shows every recorded epoch, leave epoch out."
        )
    curves = _curves(session, job)
    who = _job_name(job)
    if plot is JobPlot.LEARNING_CURVES:
        title = f"Learning curves of {who}"
        loss, best = _loss(job), _best_epoch(job, curves)
        return lambda: job_plots.learning_curves(title, curves, loss, best)
    if plot is JobPlot.PENALTIES:
        regularization = job.spec["regularization"]
        l1, l2 = float(regularization["l1"]), float(regularization["l2"])
        if l1 == 0 and l2 == 0:
            raise Conflict(
                f"Job {job.id} has no L1 or L2 penalty (regularization.l1 and regularization.l2 are 0), so its "
                "objective has no penalty terms to plot; learning_curves and sparsity apply."
            )
        title = f"Penalty terms of {who}"
        return lambda: job_plots.penalty_terms(title, curves, l1, l2)
    title = f"Sparsity of {who}"
    return lambda: job_plots.sparsity(title, curves, NEAR_ZERO)


def _curves(session: Session, job: Job) -> EpochCurves:
    rows = list(session.scalars(select(EpochMetric).where(EpochMetric.job_id == job.id).order_by(EpochMetric.epoch)))
    if not rows:
        raise _nothing_yet(job, "epochs")
    return EpochCurves(
        epochs=[row.epoch for row in rows],
        train_data_loss=[row.train_data_loss for row in rows],
        val_data_loss=[row.val_data_loss for row in rows],
        l1_penalty=[row.l1_penalty for row in rows],
        l2_penalty=[row.l2_penalty for row in rows],
        zero_fraction=[row.zero_fraction for row in rows],
        near_zero_fraction=[row.near_zero_fraction for row in rows],
    )


def _loss(job: Job) -> str:
    """The data loss the worker minimizes and records (api/schemas/job.py, OBJECTIVE)."""
    if job.task == "regression":
        return "½ · mean squared error (target units²)"
    weighted = " weighted by class" if job.spec["training"].get("class_weight") is not None else ""
    return f"cross-entropy{weighted} (nats)"


def _best_epoch(job: Job, curves: EpochCurves) -> BestEpoch | None:
    """The epoch early stopping kept; while the job runs, the lowest validation loss so far."""
    if job.spec["training"].get("early_stopping") is None:
        return None
    result = job.result or {}
    if result.get("best_epoch"):
        epoch = int(result["best_epoch"])
        return BestEpoch(epoch, f"best epoch {epoch} (early stopping kept its weights)")
    validation = [
        (loss, epoch) for epoch, loss in zip(curves.epochs, curves.val_data_loss, strict=True) if loss is not None
    ]
    if not validation or job.status not in UNFINISHED:
        return None
    epoch = min(validation)[1]
    return BestEpoch(epoch, f"lowest validation loss so far: epoch {epoch}")


def _listed(epochs: list[int]) -> str:
    if len(epochs) <= LISTED_EPOCHS:
        return ", ".join(map(str, epochs))
    half = LISTED_EPOCHS // 2
    return f"{', '.join(map(str, epochs[:half]))}, ..., {', '.join(map(str, epochs[-half:]))}"


def _weights(session: Session, job: Job, epoch: int | None) -> Callable[[], Figure]:
    recorded = list(
        session.scalars(select(LayerStat.epoch).where(LayerStat.job_id == job.id).distinct().order_by(LayerStat.epoch))
    )
    if not recorded:
        raise _nothing_yet(job, "weight statistics")
    if epoch is None:
        # By default the weights the job keeps (its artifact's: early stopping's best epoch), as GET /weights.
        kept = (job.result or {}).get("weights_epoch")
        epoch = kept if kept in recorded else recorded[-1]
    elif epoch not in recorded:
        raise NotFound(
            f"Job {job.id} has no weight statistics for epoch {epoch}; they were recorded at epochs "
            f"{_listed(recorded)} ({len(recorded)} in all)."
        )
    rows = session.scalars(
        select(LayerStat).where(LayerStat.job_id == job.id, LayerStat.epoch == epoch).order_by(LayerStat.position)
    )
    layers = [
        LayerHistogram(
            name=row.name,
            shape=list(row.shape),
            penalized=row.penalized,
            zero_fraction=row.zero_fraction,
            near_zero_fraction=row.near_zero_fraction,
            edges=list(row.histogram["edges"]),
            counts=list(row.histogram["counts"]),
        )
        for row in rows
    ]
    title = f"Weights of {_job_name(job)} at epoch {epoch}"
    return lambda: job_plots.weight_histograms(title, layers)


# Studies


@dataclass(frozen=True)
class _Scored:
    """A member's score: the stored mean and standard error once the study has finished, before that
    the mean over the folds it has finished (a standard error from two folds on)."""

    member: StudyMember
    mean: float
    standard_error: float | None


def _score(member: StudyMember) -> _Scored | None:
    if member.mean_score is not None:
        return _Scored(member, member.mean_score, member.standard_error)
    done = [float(s) for s in member.fold_scores if s is not None]
    if not done or not all(math.isfinite(s) for s in done):
        return None
    error = statistics.stdev(done) / math.sqrt(len(done)) if len(done) >= 2 else None
    return _Scored(member, statistics.fmean(done), error)


def _scored(study: Job, members: Iterable[StudyMember]) -> list[_Scored]:
    scored = [s for s in map(_score, members) if s is not None]
    if not scored:
        if study.status in UNFINISHED:
            raise Conflict(
                f"Study {study.id} is {study.status} and no member has a score yet; its plots appear as its folds "
                "finish."
            )
        raise Conflict(f"Study {study.id} is {study.status} and no member was scored, so there is nothing to plot.")
    return scored


def _study_name(study: Job) -> str:
    """How a title names the study, and whether its scores are final."""
    name = f"study {study.name!r}" if study.name else f"study {study.id}"
    if (study.result or {}).get("best"):
        return name
    return f"{name} (so far)" if study.status in UNFINISHED else f"{name} ({study.status} before finishing)"


def _short(name: str) -> str:
    """`alpha` for regularization.elastic_net.alpha: the last part of a dotted spec path."""
    return name.rsplit(".", 1)[-1]


def _score_label(study: Job) -> str:
    metric = study.spec["select"]["metric"]
    if metric == "data_loss":
        label = "data loss: " + ("½ · mean squared error" if study.task == "regression" else "cross-entropy (nats)")
    else:
        label = METRICS.get(metric, metric)
    better = "lower" if metric in LOWER_IS_BETTER else "higher"
    cv = study.spec.get("cv")
    where = f"mean over {cv['folds']} folds ± 1 SE" if cv else "on the validation split"
    return f"{label}\n{where}, {better} is better"


def _best(scored: list[_Scored], study: Job) -> _Scored:
    """The best mean (the first of equals, as the worker's "min" rule)."""
    lower = study.spec["select"]["metric"] in LOWER_IS_BETTER
    return min(scored, key=lambda s: s.mean if lower else -s.mean)


def _chosen(study: Job, scored: list[_Scored], key: str) -> _Scored | None:
    position = ((study.result or {}).get(key) or {}).get("position")
    return next((s for s in scored if s.member.position == position), None)


def _choices(study: Job, scored: list[_Scored], axis: str) -> list[Choice]:
    """The min and 1-SE members' penalties, from the finished study's result; while it runs, the best
    mean so far."""
    if (study.result or {}).get("best"):
        picked = [
            (_chosen(study, scored, "best"), "line-min", "min"),
            (_chosen(study, scored, "one_se"), "line-1se", "1-SE"),
        ]
    else:
        best = "best so far" if study.status in UNFINISHED else "best scored"
        picked = [(_best(scored, study), "line-min", best)]
    return [
        Choice(
            found.member.penalty, f"{name}: {_short(axis)} = {found.member.penalty:.3g}, score {found.mean:.4g}", gid
        )
        for found, gid, name in picked
        if found is not None and found.member.penalty is not None and found.member.penalty > 0
    ]


def _cv_curve(study: Job, members: list[StudyMember]) -> Callable[[], Figure]:
    search = study.spec["search"]
    axis = next((name for name in PENALTY_AXES if name in search), None)
    if axis is None:
        searched = ", ".join(search) if search else "no grid, only variants"
        raise Conflict(
            f"Study {study.id} has no penalty axis in its grid ({searched}); cv_curve plots the score against "
            f"one of {', '.join(PENALTY_AXES)}. The variants plot compares its members."
        )
    scored = [s for s in _scored(study, members) if s.member.penalty is not None]
    lines: dict[tuple[Any, ...], list[_Scored]] = {}
    for entry in scored:
        others = tuple(sorted((k, repr(v)) for k, v in entry.member.params.items() if k != axis))
        lines.setdefault((entry.member.variant, *others), []).append(entry)
    several = len(lines) > 1
    groups: dict[int, CvGroup] = {}
    for key, entries in lines.items():
        variant, others = key[0], key[1:]
        parts = ([f"variant {variant}"] if variant is not None else []) + [f"{_short(k)}={v}" for k, v in others]
        points = [
            ScoredPoint(e.member.penalty or 0.0, e.mean, e.standard_error, e.member.nonzero)
            for e in sorted(entries, key=lambda e: e.member.penalty or 0.0)
        ]
        group = CvGroup(
            ", ".join(parts) if several else "",
            [p for p in points if p.penalty > 0],
            next((p for p in points if p.penalty == 0), None),
        )
        for entry in entries:
            groups[entry.member.position] = group
    drawn = list({id(g): g for g in groups.values() if g.points}.values())
    if not drawn:
        raise Conflict(
            f"Study {study.id} has no scored member with {axis} above 0 yet; the curve is drawn on a log scale of "
            "the penalty."
        )
    choices = _choices(study, scored, axis)
    best = _chosen(study, scored, "best") or _best(scored, study)
    reference = groups.get(best.member.position)
    title = f"Cross-validation curve of {_study_name(study)}"
    label = _score_label(study)
    return lambda: study_plots.cv_curve(title, drawn, _short(axis), label, choices, reference)


def _path_point(member: StudyMember) -> tuple[float, float]:
    """(l1_ratio, alpha) of a path-solved member: where it lies on the study's coefficient paths."""
    regularization = member.spec["regularization"]
    net = regularization.get("elastic_net")
    l1, l2 = regularization["l1"], regularization["l2"]
    if net is not None and net.get("alpha") is not None:
        return float(net["l1_ratio"]), float(net["alpha"])
    return (float(l1 / (l1 + l2)) if l1 + l2 > 0 else 1.0), float(l1 + l2)


def _paths(study: Job, members: list[StudyMember]) -> Callable[[], Figure]:
    stored = (study.result or {}).get("path")
    if stored is None:
        if study.status in UNFINISHED:
            raise Conflict(f"Study {study.id} is {study.status}; its coefficient paths are computed when it finishes.")
        raise Conflict(
            f"Study {study.id} has no coefficient paths: they are computed for linear regression members solved "
            "along a penalty grid (l1/l2 penalties only, proximal L1), and this study has none."
        )
    path = PathRead.model_validate(stored)
    by_position = {m.position: m for m in members}
    panels = []
    for curve in path.paths:
        choices = []
        for key, gid, name in (("best", "line-min", "min"), ("one_se", "line-1se", "1-SE")):
            member = by_position.get(((study.result or {}).get(key) or {}).get("position", -1))
            if member is None:
                continue
            ratio, alpha = _path_point(member)
            if math.isclose(ratio, curve.l1_ratio) and any(math.isclose(alpha, a) for a in curve.alphas) and alpha > 0:
                choices.append(Choice(alpha, f"{name}: alpha = {alpha:.3g}", gid))
        panels.append(PathPanel(curve.l1_ratio, curve.alphas, curve.coefficients, choices))
    standardized = study.spec["job"]["training"].get("standardize", True)
    coefficient = "coefficient (" + ("standardized features" if standardized else "feature units") + ")"
    title = f"Coefficient paths of {_study_name(study)}"
    return lambda: study_plots.coefficient_paths(title, path.features, panels, "alpha", coefficient)


def _params_label(params: dict[str, Any]) -> str:
    return ", ".join(f"{_short(k)}={v:.3g}" if isinstance(v, float) else f"{_short(k)}={v}" for k, v in params.items())


def _variants(study: Job, members: list[StudyMember]) -> Callable[[], Figure]:
    scored = _scored(study, members)
    lower = study.spec["select"]["metric"] in LOWER_IS_BETTER
    names = list(study.spec.get("variants") or {})
    rows: list[tuple[str, _Scored]] = []
    shown = ""
    if names:
        # A variant crossed with a grid is represented by its best grid point.
        for name in names:
            entries = [s for s in scored if s.member.variant == name]
            if not entries:
                continue
            top = _best(entries, study)
            total = sum(1 for m in members if m.variant == name)
            grid = _params_label(top.member.params)
            rows.append((f"{name} (best of {total}: {grid})" if total > 1 else name, top))
    else:
        if len(scored) > MEMBER_ROWS:
            scored = sorted(scored, key=lambda s: s.mean if lower else -s.mean)[:MEMBER_ROWS]
            shown = f", the {MEMBER_ROWS} best of {len(members)}"
        rows = [(_params_label(s.member.params) or f"member {s.member.position}", s) for s in scored]
    best = _best([entry for _, entry in rows], study)
    index = next(i for i, (_, entry) in enumerate(rows) if entry is best)
    title = f"{'Variants' if names else 'Members'} of {_study_name(study)}{shown}"
    label = _score_label(study)
    scores = [VariantScore(text, entry.mean, entry.standard_error) for text, entry in rows]
    return lambda: study_plots.variants(title, scores, index, label, "variant" if names else "member")
