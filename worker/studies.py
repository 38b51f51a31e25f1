"""Runs a claimed study: its members trained together, fold by fold, scored on held-out rows, and one
selected by the study's rule. The glue between the database and the engine's study functions
(worker.training.paths, stacked, folds, selection).

Rows: the test split (the base job's test_fraction and seed, the same rows a job with that spec holds
out) never takes part in selection. Without cv, members train on the base job's own split and are
scored on its validation rows, so each equals its single-job twin. With cv, the non-test rows, in
dataset order, are split into k folds (KFold, or StratifiedKFold for classification; unshuffled, these
are scikit-learn's folds), and each fold standardizes on its own training rows, as glmnet does.

Members: linear regression members whose only regularization is l1/l2 (lasso, ridge, elastic net) are
convex and are solved exactly along a warm-started path (worker.training.paths), per l1_ratio, from the
largest penalty down; scikit-learn's ElasticNet objective is the project's objective for them. Every
other member trains as a network, members of the same shapes stacked in one pass
(worker.training.stacked).

Resume: each fold's scores are written for all members at once, fenced by the attempt, so a study taken
over after a crash redoes only the folds it had not recorded; every fold is deterministic, so the
results equal an uninterrupted run's."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select, update

from core.db import session_scope
from core.errors import ObjectMissing, StoreUnavailable
from models import JobStatus, StudyMember, record_event, update_running
from models.base import utcnow
from worker.datasets import DatasetUnavailable, LoadedData
from worker.training import Canceled, InvalidData, TrainConfig
from worker.training.config import Task
from worker.training.data import ArrayDataset, encode_labels, handle_missing, split_indices
from worker.training.folds import kfold, stratified_kfold
from worker.training.metrics import classification_metrics
from worker.training.paths import alpha_grid, enet_path, logistic_l2_path
from worker.training.selection import select as select_member
from worker.training.selection import standard_errors
from worker.training.stacked import train_stacked

log = logging.getLogger(__name__)

LOWER_IS_BETTER = frozenset({"data_loss", "mse", "log_loss", "rmse", "mae"})
PATH_PARAMETER = "regularization.elastic_net.alpha"
# The searched penalties that the 1-SE rule orders members by (larger = simpler).
PENALTY_AXES = ("regularization.elastic_net.alpha", "regularization.l1", "regularization.l2")
# glmnet's convention for a ridge path: alpha_max as if the L1 share were 0.001 (never infinite).
RIDGE_L1_RATIO = 1e-3


@dataclass
class Member:
    position: int
    spec: dict[str, Any]
    params: dict[str, Any]
    penalty: float | None
    fold_scores: list[float | None]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rows:
    """Row indices (after rows with missing values were handled) of the non-test rows, the test rows,
    and each fold's (train, held-out) pair."""

    non_test: np.ndarray
    test: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]


def is_path_member(spec: dict[str, Any], task: str) -> bool:
    """A convex linear member, solved to its optimum along a warm-started path instead of trained:
    regression with only l1/l2 (coordinate descent, scikit-learn's enet_path), or logistic/softmax
    regression with only l2 > 0 (Newton's method, scikit-learn's LogisticRegression at C = 1/(n * l2))."""
    regularization = spec["regularization"]
    convex = (
        spec["model"]["type"] == "linear"
        and regularization["weight_decay"] == 0
        and regularization["max_norm"] is None
        and spec["training"]["class_weight"] is None
    )
    if task == "regression":
        return convex and regularization["l1_method"] == "proximal"
    # Without a penalty, separable classes have no optimum to solve for: such members are trained.
    return convex and regularization["l1"] == 0 and regularization["l2"] > 0


def plan_rows(data: ArrayDataset, task: str, spec: dict[str, Any]) -> Rows:
    base = spec["job"]["training"]
    labels = encode_labels(data.y)[0] if task == "classification" else data.y
    task_name: Task = "classification" if task == "classification" else "regression"
    cv = spec["cv"]
    if cv is None:
        fractions = (base["validation_fraction"], base["test_fraction"])
        train, validation, test = split_indices(labels, task_name, *fractions, base["seed"])
        return Rows(non_test=np.sort(np.concatenate([train, validation])), test=test, folds=[(train, validation)])
    train, _, test = split_indices(labels, task_name, 0.0, base["test_fraction"], base["seed"])
    non_test = np.sort(train)
    try:
        if task == "classification":
            pairs = stratified_kfold(labels[non_test], cv["folds"], cv["shuffle"], cv["seed"])
        else:
            pairs = kfold(len(non_test), cv["folds"], cv["shuffle"], cv["seed"])
    except ValueError as exc:
        # Checked at submit against the profile; rows dropped for missing values can still make too few.
        raise InvalidData(str(exc)) from None
    return Rows(non_test=non_test, test=test, folds=[(non_test[a], non_test[b]) for a, b in pairs])


# Scores


def regression_scores(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    residual = y - predicted
    mse = float(np.mean(residual**2))
    total = float(np.sum((y - y.mean()) ** 2))
    return {
        "data_loss": mse / 2,
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(np.mean(np.abs(residual))),
        "r2": 1 - float(np.sum(residual**2)) / total if total > 0 else 0.0,
    }


def metric_of(scores: dict[str, Any] | None, metric: str) -> float | None:
    if not scores:
        return None
    if metric == "mse" and "mse" not in scores and scores.get("rmse") is not None:
        return float(scores["rmse"]) ** 2
    value = scores.get(metric)
    return float(value) if value is not None else None


def _standardize(X: np.ndarray, rows: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray]:
    if not standardize:
        return np.zeros(X.shape[1]), np.ones(X.shape[1])
    mean = X[rows].mean(axis=0)
    scale = X[rows].std(axis=0)
    scale[scale == 0] = 1.0
    return mean, scale


# Path members


def _l1_ratio(spec: dict[str, Any]) -> float:
    regularization = spec["regularization"]
    net = regularization.get("elastic_net")
    if net is not None:
        return float(net["l1_ratio"])
    l1, l2 = regularization["l1"], regularization["l2"]
    return float(l1 / (l1 + l2)) if l1 + l2 > 0 else 1.0


def _alpha(spec: dict[str, Any]) -> float:
    regularization = spec["regularization"]
    net = regularization.get("elastic_net")
    if net is not None and net.get("alpha") is not None:
        return float(net["alpha"])
    return float(regularization["l1"] + regularization["l2"])


def fill_path_values(members: list[Member], X: np.ndarray, y: np.ndarray, rows: Rows, spec: dict[str, Any]) -> bool:
    """The `path` axis' values, scikit-learn's grid from all non-test rows, written into each member's
    params and spec. False when the study has no path axis (or it was filled by an earlier attempt)."""
    axes = {name: axis for name, axis in spec["search"].items() if axis.get("path")}
    if not axes:
        return False
    ((name, axis),) = axes.items()
    if all(member.params.get(name) is not None for member in members):
        return False
    standardize = spec["job"]["training"]["standardize"]
    mean, scale = _standardize(X, rows.non_test, standardize)
    Xs, ys = (X[rows.non_test] - mean) / scale, y[rows.non_test]
    grids: dict[float, np.ndarray] = {}
    for member in members:
        if name == "regularization.l2":
            ratio = RIDGE_L1_RATIO
        elif name == "regularization.l1":
            ratio = 1.0
        else:
            ratio = _l1_ratio(member.spec)
        if ratio not in grids:
            grids[ratio] = alpha_grid(
                Xs, ys, max(ratio, RIDGE_L1_RATIO), n_alphas=axis["path"]["n"], eps=axis["path"]["eps"]
            )
    counters: dict[tuple[Any, ...], int] = {}
    for member in members:
        ratio = (
            RIDGE_L1_RATIO
            if name == "regularization.l2"
            else 1.0
            if name == "regularization.l1"
            else _l1_ratio(member.spec)
        )
        others = (member.extra.get("variant"), *sorted((k, repr(v)) for k, v in member.params.items() if k != name))
        index = counters.get(others, 0)
        counters[others] = index + 1
        value = float(grids[ratio][index])
        member.params[name] = value
        _set(member.spec, name, value)
        if name == PATH_PARAMETER:
            net = member.spec["regularization"]["elastic_net"]
            member.spec["regularization"]["l1"] = value * net["l1_ratio"]
            member.spec["regularization"]["l2"] = value * (1 - net["l1_ratio"])
        member.penalty = value
    return True


def _set(spec: dict[str, Any], dotted: str, value: Any) -> None:
    node = spec
    *parents, last = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def solve_path_fold(
    members: list[Member],
    X: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    held_out: np.ndarray,
    standardize: bool,
    task: str = "regression",
) -> dict[int, dict[str, Any]]:
    """Every path member on one fold: one warm-started path per l1_ratio (regression) or one along l2
    (classification), largest penalty first."""
    mean, scale = _standardize(X, train, standardize)
    X_train, X_held = (X[train] - mean) / scale, (X[held_out] - mean) / scale
    if task == "classification":
        return _solve_logistic_fold(members, X_train, X_held, y, train, held_out)
    by_ratio: dict[float, list[Member]] = {}
    for member in members:
        by_ratio.setdefault(_l1_ratio(member.spec), []).append(member)
    out: dict[int, dict[str, Any]] = {}
    for ratio, group in by_ratio.items():
        alphas = np.array(sorted({_alpha(m.spec) for m in group}, reverse=True))
        solved = enet_path(X_train, y[train], max(ratio, 0.0), alphas)
        coefs, intercepts = solved.coefs, solved.intercepts
        column = {float(a): j for j, a in enumerate(alphas)}
        for member in group:
            j = column[_alpha(member.spec)]
            w, b = coefs[:, j], float(intercepts[j])
            out[member.position] = {
                "held_out": regression_scores(y[held_out], X_held @ w + b),
                "train": regression_scores(y[train], X_train @ w + b),
                "nonzero": int(np.count_nonzero(w)),
                "zero_fraction": float(np.mean(w == 0)) if w.size else 0.0,
            }
    return out


def _solve_logistic_fold(
    members: list[Member],
    X_train: np.ndarray,
    X_held: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    held_out: np.ndarray,
) -> dict[int, dict[str, Any]]:
    """L2 logistic (two classes) or softmax regression at each member's l2 on one fold. The objective's
    mean cross-entropy + (l2/2)|W|^2 is scikit-learn's C * sum + |W|^2/2 divided by n*C, so l2 is
    C = 1/(n_train * l2); every class of the data keeps its output even when the fold lacks it."""
    classes = np.unique(y)
    l2s = np.array(sorted({float(m.spec["regularization"]["l2"]) for m in members}, reverse=True))
    path = logistic_l2_path(X_train, y[train], 1.0 / (len(train) * l2s), classes=classes)
    column = {float(l2): k for k, l2 in enumerate(l2s)}
    out: dict[int, dict[str, Any]] = {}
    for member in members:
        k = column[float(member.spec["regularization"]["l2"])]
        W, b = path.coefs[k], path.intercepts[k]

        def scores(X_part: np.ndarray, rows: np.ndarray, W: np.ndarray = W, b: np.ndarray = b) -> dict[str, Any]:
            measured = classification_metrics(X_part @ W.T + b, y[rows], len(classes))
            return {"data_loss": measured["log_loss"], **measured}

        out[member.position] = {
            "held_out": scores(X_held, held_out),
            "train": scores(X_train, train),
            "nonzero": int(np.count_nonzero(W)),
            "zero_fraction": float(np.mean(W == 0)) if W.size else 0.0,
        }
    return out


# Network members


def _configs(members: list[Member], task: str) -> list[TrainConfig]:
    return [TrainConfig.from_spec(member.spec, task) for member in members]  # type: ignore[arg-type]


def train_network_fold(
    members: list[Member],
    data: ArrayDataset,
    task: str,
    train: np.ndarray,
    held_out: np.ndarray,
    test: np.ndarray,
    should_stop: Callable[[], bool],
) -> dict[int, dict[str, Any]]:
    reporter = _StopReporter(should_stop)
    outcomes = train_stacked(_configs(members, task), data, reporter, rows=(train, held_out, test))
    out: dict[int, dict[str, Any]] = {}
    for member, outcome in zip(members, outcomes, strict=True):
        reports = reporter.reports.get(outcome.member, [])
        finals = reports[-1].validation if reports else None
        if outcome.outcome is None:
            out[member.position] = {"held_out": None, "train": None, "error": str(outcome.error)}
            continue
        result = outcome.outcome.result.to_json()
        weights = result["weights"]
        best = next((r.validation for r in reports if r.epoch == result["best_epoch"]), None)
        out[member.position] = {
            "held_out": result.get("validation"),
            "train": result.get("train"),
            "test": result.get("test"),
            "nonzero": int(weights["count"] - round(weights["zero_fraction"] * weights["count"])),
            "zero_fraction": result["weights"]["zero_fraction"],
            "epochs": result["epochs_run"],
            "best_epoch": result["best_epoch"],
            "final": finals,
            "best": best,
        }
    return out


class _StopReporter:
    """Keeps every member's epoch reports (for final and best-epoch scores) and passes stops through."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self._should_stop = should_stop
        self.reports: dict[int, list[Any]] = {}

    def on_member_epoch(self, member: int, report: Any) -> None:
        self.reports.setdefault(member, []).append(report)

    def on_member_layers(self, member: int, epoch: int, layers: list[dict[str, Any]]) -> None:
        return None

    def should_stop(self) -> bool:
        return self._should_stop()


# The study


@dataclass
class StudyContext:
    study_id: str
    attempt: int
    spec: dict[str, Any]
    task: str
    should_stop: Callable[[], bool]
    # Member-fold fits the study plans (set once its members are loaded); progress events count against it.
    fits_total: int = 0


class LostStudy(Exception):
    """The attempt no longer owns the study (canceled or taken over)."""


def load_members(study_id: str) -> list[Member]:
    with session_scope() as session:
        rows = session.scalars(
            select(StudyMember).where(StudyMember.study_id == study_id).order_by(StudyMember.position)
        )
        return [
            Member(
                m.position,
                dict(m.spec),
                dict(m.params),
                m.penalty,
                list(m.fold_scores),
                {
                    "variant": m.variant,
                    "train_scores": m.train_scores,
                    "columns": {"final_scores": m.final_scores, "best_scores": m.best_scores},
                },
            )
            for m in rows
        ]


def _write(context: StudyContext, members: list[Member], fold: int | None, fits_done: int, **columns: Any) -> None:
    """One fenced transaction: the fold's scores of every member (or their filled-in parameters)."""
    with session_scope() as session:
        if not update_running(
            session, context.study_id, context.attempt, heartbeat_at=utcnow(), progress_epoch=fits_done
        ):
            raise LostStudy()
        if fold is not None:
            # One progress event per fold finished by all its pending members.
            record_event(session, context.study_id, "progress", {"done": fits_done, "total": context.fits_total})
        for member in members:
            values: dict[str, Any] = {"fold_scores": member.fold_scores, "params": member.params, "spec": member.spec}
            values["penalty"] = member.penalty
            values.update(member.extra.get("columns", {}))
            session.execute(
                update(StudyMember)
                .where(StudyMember.study_id == context.study_id, StudyMember.position == member.position)
                .values(**values)
                .execution_options(synchronize_session=False)
            )


def execute(context: StudyContext, loaded: LoadedData) -> dict[str, Any]:
    """Runs what is left of the study and returns its result (selection, test metrics, path)."""
    spec, task = context.spec, context.task
    base = spec["job"]
    metric = spec["select"]["metric"]
    data = handle_missing(loaded.arrays, base["training"]["missing"])
    X = data.X.reshape(len(data.X), -1).astype(np.float64)
    # Path members' targets: numbers (regression) or class indices 0..K-1 (classification).
    y = data.y.astype(np.float64) if task == "regression" else encode_labels(data.y)[0]
    rows = plan_rows(data, task, spec)
    members = load_members(context.study_id)
    n_folds = len(rows.folds)
    context.fits_total = len(members) * n_folds
    if fill_path_values(members, X, y, rows, spec):
        _write(context, members, None, sum(sum(s is not None for s in m.fold_scores) for m in members))
    path_members = [m for m in members if is_path_member(m.spec, task)]
    network_members = [m for m in members if not is_path_member(m.spec, task)]
    standardize = base["training"]["standardize"]
    for fold, (train, held_out) in enumerate(rows.folds):
        pending = [m for m in members if m.fold_scores[fold] is None]
        if not pending:
            continue
        if context.should_stop():
            raise Canceled(0)
        results: dict[int, dict[str, Any]] = {}
        solved = [m for m in path_members if m in pending]
        if solved:
            results.update(solve_path_fold(solved, X, y, train, held_out, standardize, task))
        networks = [m for m in network_members if m in pending]
        if networks:
            no_test = np.array([], dtype=np.int64)
            results.update(train_network_fold(networks, data, task, train, held_out, no_test, context.should_stop))
        for member in pending:
            found = results[member.position]
            score = metric_of(found.get("held_out"), metric)
            # A member that diverged scores NaN on the fold: it can never be selected.
            member.fold_scores[fold] = score if score is not None else math.nan
            _record_fold(member, found, fold, n_folds, metric)
        done = sum(sum(s is not None for s in m.fold_scores) for m in members)
        _write(context, pending, fold, done)
    return _finish(context, members, rows, X, y, data, loaded)


def _record_fold(member: Member, found: dict[str, Any], fold: int, n_folds: int, metric: str) -> None:
    """The fold's numbers into the member's columns: per-fold final and best-epoch validation metrics,
    and the running mean of the training score over the folds done in this attempt."""
    columns = member.extra.setdefault("columns", {})
    trains = list(columns.get("train_scores") or member.extra.get("train_scores") or [None] * n_folds)
    trains[fold] = metric_of(found.get("train"), metric)
    finals = list(columns.get("final_scores") or [None] * n_folds)
    bests = list(columns.get("best_scores") or [None] * n_folds)
    finals[fold] = found.get("final") or found.get("held_out")
    bests[fold] = found.get("best") or found.get("held_out")
    known = [t for t in trains if t is not None]
    columns.update(
        final_scores=finals,
        best_scores=bests,
        train_scores=trains,
        train_score=float(np.mean(known)) if known else None,
        nonzero=found.get("nonzero"),
        zero_fraction=found.get("zero_fraction"),
        epochs=found.get("epochs"),
        best_epoch=found.get("best_epoch"),
    )


def _score_dict(member: Member, mean: float, error: float | None) -> dict[str, Any]:
    return {
        "position": member.position,
        "variant": member.extra.get("variant"),
        "params": member.params,
        "mean": mean,
        "standard_error": error,
    }


def _finish(
    context: StudyContext,
    members: list[Member],
    rows: Rows,
    X: np.ndarray,
    y: Any,
    data: ArrayDataset,
    loaded: LoadedData,
) -> dict[str, Any]:
    spec, task = context.spec, context.task
    metric, rule = spec["select"]["metric"], spec["select"]["rule"]
    scores = np.array([[math.nan if s is None else s for s in m.fold_scores] for m in members], dtype=np.float64)
    means = scores.mean(axis=1)
    folds = scores.shape[1]
    errors = standard_errors(means, scores) if folds >= 2 else np.full(len(members), math.nan)
    for member, mean, error in zip(members, means, errors, strict=True):
        member.extra.setdefault("columns", {}).update(
            mean_score=float(mean) if math.isfinite(mean) else None,
            standard_error=float(error) if folds >= 2 and math.isfinite(error) else None,
        )
    _write(context, members, None, len(members) * folds)
    finite = np.isfinite(means)
    if not finite.any():
        raise InvalidData("No member of this study produced a finite score (every member diverged).")
    candidates = np.flatnonzero(finite)
    greater = metric not in LOWER_IS_BETTER
    fold_matrix = scores if folds >= 2 else np.repeat(means[:, None], 2, axis=1)

    def choose(among: np.ndarray, how: str) -> Member:
        penalties = np.array([members[i].penalty or 0.0 for i in among], dtype=np.float64)
        picked = select_member(means[among], fold_matrix[among], penalties, how, greater)  # type: ignore[arg-type]
        return members[among[picked.index]]

    best = choose(candidates, "min")
    one_se = None
    if folds >= 2:
        # glmnet's rule runs along one penalty path: the best member's (its variant and its other grid
        # values, e.g. its l1_ratio), so that penalties of different mixes are never compared.
        axis = next((name for name in PENALTY_AXES if name in spec["search"]), None)

        def line(member: Member) -> tuple[Any, ...]:
            others = sorted((k, repr(v)) for k, v in member.params.items() if k != axis)
            return (member.extra.get("variant"), *others)

        same_path = np.array([i for i in candidates if axis is None or line(members[i]) == line(best)])
        one_se = choose(same_path, "1se")
    selected = one_se if rule == "1se" and one_se is not None else best

    def described(member: Member) -> dict[str, Any]:
        index = members.index(member)
        return _score_dict(member, float(means[index]), float(errors[index]) if folds >= 2 else None)

    result: dict[str, Any] = {
        "metric": metric,
        "rule": rule,
        "best": described(best),
        "one_se": described(one_se) if one_se is not None else None,
        "selected": described(selected),
        "test": None,
    }
    standardize = spec["job"]["training"]["standardize"]
    # Coefficient paths are served for regression members (one coefficient per feature).
    path_members = [m for m in members if task == "regression" and is_path_member(m.spec, task)]
    if len(rows.test):
        if is_path_member(selected.spec, task):
            fitted = solve_path_fold([selected], X, y, rows.non_test, rows.test, standardize, task)
            result["test"] = fitted[selected.position]["held_out"]
        else:
            fitted = train_network_fold(
                [selected], data, task, rows.non_test, np.array([], dtype=np.int64), rows.test, context.should_stop
            )
            result["test"] = fitted[selected.position].get("test")
    if path_members:
        result["path"] = _coefficient_path(path_members, X, y, rows, standardize, loaded)
    return result


def _coefficient_path(
    members: list[Member], X: np.ndarray, y: np.ndarray, rows: Rows, standardize: bool, loaded: LoadedData
) -> dict[str, Any]:
    mean, scale = _standardize(X, rows.non_test, standardize)
    Xs = (X[rows.non_test] - mean) / scale
    curves = []
    by_ratio: dict[float, set[float]] = {}
    for member in members:
        by_ratio.setdefault(_l1_ratio(member.spec), set()).add(_alpha(member.spec))
    for ratio, alphas in sorted(by_ratio.items()):
        ordered = np.array(sorted(alphas, reverse=True))
        solved = enet_path(Xs, y[rows.non_test], ratio, ordered)
        coefs, intercepts = solved.coefs, solved.intercepts
        curves.append(
            {
                "l1_ratio": ratio,
                "alphas": [float(a) for a in ordered],
                "coefficients": [[float(v) for v in row] for row in coefs],
                "intercepts": [float(b) for b in intercepts],
            }
        )
    return {"features": list(loaded.arrays.feature_names), "paths": curves}


def run_claimed(claimed: Any, load: Callable[..., LoadedData]) -> None:
    """Runs a study the worker has claimed (worker.runner.run_job), with the job lifecycle: a lease,
    cancel and shutdown at the next step, a time limit, and errors that say whose they are."""
    from worker.runner import Lease, _finish, _finite, _hand_back, missing_object_error

    settings_limit = _time_limit()
    base = claimed.spec["job"]
    with Lease(claimed.job_id, claimed.attempt, settings_limit) as lease:
        context = StudyContext(
            claimed.job_id, claimed.attempt, claimed.spec, claimed.task, lambda: lease.stop_reason() is not None
        )
        try:
            loaded = load(claimed.dataset_id, claimed.sha256, base["target"] or "target", base.get("features"))
            result = execute(context, loaded)
        except (Canceled, LostStudy):
            reason = lease.stop_reason()
            if reason == "shutdown":
                # The folds recorded so far are kept; another worker resumes with the rest.
                _hand_back(claimed.job_id, claimed.attempt)
            elif reason == "timeout":
                _finish(
                    claimed.job_id,
                    claimed.attempt,
                    JobStatus.FAILED,
                    error_type="timeout",
                    error_message=f"The study ran longer than this server's limit of {settings_limit} s; the folds "
                    "it finished are kept on its members.",
                )
            else:
                log.info("study %s stopped: it no longer belongs to this attempt", claimed.job_id)
            return
        except (InvalidData, DatasetUnavailable) as exc:
            _finish(
                claimed.job_id, claimed.attempt, JobStatus.FAILED, error_type="invalid_data", error_message=str(exc)
            )
            return
        except StoreUnavailable:
            _hand_back(claimed.job_id, claimed.attempt, "the store is unavailable")
            return
        except ObjectMissing as exc:
            _finish(claimed.job_id, claimed.attempt, JobStatus.FAILED, **missing_object_error(claimed.job_id, exc))
            return
        except Exception:
            reference = str(uuid.uuid4())
            log.exception("study %s failed with an internal error; reference %s", claimed.job_id, reference)
            _finish(
                claimed.job_id,
                claimed.attempt,
                JobStatus.FAILED,
                error_type="internal",
                error_message=f"The service failed while running this study; it has been logged under reference "
                f"{reference}. This is not a problem with your data or spec.",
                error_reference=reference,
            )
            return
    done = _finish(claimed.job_id, claimed.attempt, JobStatus.SUCCEEDED, result=_finite(result))
    if done is None:
        log.info("study %s finished but was canceled or taken over first; result not recorded", claimed.job_id)


def _time_limit() -> int:
    from core.settings import get_settings

    return get_settings().job_time_limit_seconds
