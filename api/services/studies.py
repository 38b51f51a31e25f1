"""Study use cases: expanding a study into its members at submit (every member validated as the job it
would be), reading studies, their members and their regularization paths, and creating the refit job.

A study is a job row of kind "study": it shares the lifecycle, leases, limits, fair claiming and
Idempotency-Key handling of jobs, and it is admitted through the same function (jobs.admit). Its
members are StudyMember rows made in the same transaction."""

from __future__ import annotations

import copy
import itertools
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.schemas.job import JobCreate
from api.schemas.study import (
    LOWER_IS_BETTER,
    PATH_PARAMETERS,
    MemberRead,
    PathRead,
    SearchAxis,
    StudyCreate,
    StudyRead,
)
from api.services import idempotency
from api.services.datasets import resolve_dataset
from api.services.jobs import admit, build_job, create_job, dataset_ref, get_job
from api.services.training_data import TrainingView, training_view
from core.architecture import output_units, parameter_shapes
from core.errors import Conflict, InvalidInput, NotFound
from core.settings import Settings
from models import Job, JobStatus, StudyMember

log = logging.getLogger(__name__)

# A grid value stands for "filled in from the data when the study starts" (a `path` axis).
FROM_PATH = None


@dataclass(frozen=True)
class PlannedMember:
    variant: str | None
    params: dict[str, Any]
    spec: dict[str, Any]
    penalty: float | None


def _error_sentence(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the spec"
    return f"{where}: {first['msg']}"


def _field_exists(model: type[BaseModel], dotted: str) -> bool:
    """Whether a dotted path names a field of the job spec (through nested models and optional ones)."""
    current: Any = model
    for part in dotted.split("."):
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return False
        annotation = fields[part].annotation
        nested = [arg for arg in getattr(annotation, "__args__", (annotation,)) if isinstance(arg, type)]
        current = next((arg for arg in nested if issubclass(arg, BaseModel)), None) or object
    return True


def _set(spec: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = spec
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _merge(base: dict[str, Any], partial: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in partial.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _axis_values(name: str, axis: SearchAxis) -> list[Any]:
    if axis.values is not None:
        return list(axis.values)
    if axis.log_range is not None:
        low, high, n = axis.log_range
        return [float(v) for v in np.geomspace(high, low, int(n))]
    assert axis.path is not None
    return [FROM_PATH] * axis.path.n


def _check_axes(body: StudyCreate) -> None:
    for name, axis in body.search.items():
        if not _field_exists(JobCreate, name):
            raise InvalidInput(
                f"search names {name!r}, which is not a field of the job spec; use dotted paths such as "
                "'regularization.l2', 'model.dropout' or 'optimizer.lr'."
            )
        if axis.path is not None and name not in PATH_PARAMETERS:
            raise InvalidInput(
                f"search.{name} asks for `path`, which applies only to {', '.join(PATH_PARAMETERS)} (a penalty "
                "whose largest useful value the data determines); give `values` or `log_range` instead."
            )
    paths = [name for name, axis in body.search.items() if axis.path is not None]
    if len(paths) > 1:
        raise InvalidInput(f"Only one search axis may be a `path`; got {', '.join(paths)}.")
    if paths and body.job.model.type != "linear":
        raise InvalidInput(
            f"search.{paths[0]} asks for `path`, scikit-learn's alpha grid, which is defined for linear models; "
            "use `log_range` for networks."
        )
    if body.select.rule == "1se" and body.cv is None:
        raise InvalidInput(
            "select.rule '1se' needs cross-validation (its standard error is across folds); add `cv` or use 'min'."
        )


def _penalty(spec: dict[str, Any], params: dict[str, Any]) -> float | None:
    """The strength the 1-SE rule orders by: the searched penalty (larger = simpler model)."""
    for name in ("regularization.elastic_net.alpha", "regularization.l1", "regularization.l2"):
        if name in params:
            value = params[name]
            return float(value) if value is not None else None
    regularization = spec["regularization"]
    return float(regularization["l1"] + regularization["l2"])


def plan_members(session: Session, settings: Settings, tenant_id: str, body: StudyCreate) -> list[PlannedMember]:
    """Every member of the study, each validated exactly as POST /v1/jobs would validate it."""
    _check_axes(body)
    axes = list(body.search.items())
    sizes = [len(_axis_values(name, axis)) for name, axis in axes]
    variants: list[tuple[str | None, dict[str, Any]]] = list(body.variants.items()) or [(None, {})]
    count = len(variants) * math.prod(sizes)
    folds = body.cv.folds if body.cv else 1
    if count > settings.max_study_members:
        raise InvalidInput(
            f"This study has {count:,} members ({' x '.join(map(str, [len(variants), *sizes]))}), above this "
            f"server's limit of {settings.max_study_members:,}; use fewer values or variants."
        )
    if count * folds > settings.max_study_fits:
        raise InvalidInput(
            f"This study trains {count:,} members x {folds} folds = {count * folds:,} fits, above this server's "
            f"limit of {settings.max_study_fits:,}; use fewer members or folds."
        )
    base = body.job.model_dump(mode="json", exclude_unset=True)
    planned: list[PlannedMember] = []
    checked: dict[str, None] = {}
    for variant, partial in variants:
        for point in itertools.product(*[_axis_values(name, axis) for name, axis in axes]):
            params = {name: value for (name, _), value in zip(axes, point, strict=True)}
            spec = _merge(base, partial)
            for name, value in params.items():
                # A path value is known only once the data is split; validate with a stand-in.
                _set(spec, name, 1.0 if value is FROM_PATH else value)
            label = _member_label(len(planned), variant, params)
            try:
                member = JobCreate.model_validate(spec)
            except ValidationError as exc:
                raise InvalidInput(f"{label} is not a valid job: {_error_sentence(exc)}.") from None
            normalized = member.model_dump(mode="json")
            key = repr(sorted(normalized.items()))
            if key not in checked:
                try:
                    build_job(session, settings, tenant_id, member)
                except InvalidInput as exc:
                    raise InvalidInput(f"{label} is not a valid job: {exc.detail}") from None
                checked[key] = None
            for name, value in params.items():
                if value is FROM_PATH:
                    _set(normalized, name, None)
            planned.append(PlannedMember(variant, params, normalized, _penalty(normalized, params)))
    return planned


def _member_label(position: int, variant: str | None, params: dict[str, Any]) -> str:
    parts = [f"variant {variant!r}"] if variant is not None else []
    parts += [f"{name}={'(path)' if value is FROM_PATH else value!r}" for name, value in params.items()]
    return f"Member {position}" + (f" ({', '.join(parts)})" if parts else "")


def _check_folds(body: StudyCreate, job: Job, class_counts: list[tuple[Any, int]] | None, rows: int) -> None:
    if body.cv is None:
        return
    folds = body.cv.folds
    usable = 1 - body.job.training.test_fraction
    if job.task == "classification" and class_counts:
        label, smallest = min(class_counts, key=lambda pair: pair[1])
        if label is None:
            label = "the least frequent"
        available = math.floor(smallest * usable)
        if folds > available:
            raise InvalidInput(
                f"cv.folds is {folds}, more than the {available} non-test rows of the smallest class "
                f"({label if isinstance(label, str) and label.startswith('the ') else repr(label)}); "
                "stratified folds need a row of every class in each fold. Use fewer folds."
            )
    elif folds > math.floor(rows * usable):
        raise InvalidInput(f"cv.folds is {folds}, more than the {math.floor(rows * usable)} non-test rows.")


def _check_parameters(settings: Settings, view: TrainingView, body: StudyCreate, members: int) -> None:
    """Members are trained side by side: their parameters together must fit the per-job limit."""
    shapes = parameter_shapes(
        body.job.model.model_dump(mode="json"),
        view.n_features,
        output_units(view.task, view.n_classes),
        view.image_shape,
    )
    total = members * sum(math.prod(shape) for _, shape in shapes)
    if total > settings.max_parameters:
        raise InvalidInput(
            f"{members} members of {total // members:,} parameters each are {total:,} parameters trained together, "
            f"above this server's limit of {settings.max_parameters:,}; use fewer members or a smaller network."
        )


def create_study(
    session: Session,
    settings: Settings,
    tenant_id: str,
    body: StudyCreate,
    records: Callable[[Job], Iterable[Any]] | None = None,
    **lineage: Any,
) -> Job:
    members = plan_members(session, settings, tenant_id, body)
    job = build_job(session, settings, tenant_id, body.job, **lineage)
    dataset = resolve_dataset(session, tenant_id, body.job.dataset)
    base = body.job
    view = training_view(
        dataset, base.target, base.task, base.features, base.exclude_columns, max_categories=settings.max_categories
    )
    counts = view.class_counts
    if counts is None and dataset.builtin is not None and dataset.builtin.smallest_class is not None:
        counts = [(None, dataset.builtin.smallest_class)]
    paths = [name for name, axis in body.search.items() if axis.path is not None]
    if paths and job.task == "classification":
        raise InvalidInput(
            f"search.{paths[0]} asks for `path`, scikit-learn's alpha grid for linear regression; this study "
            "classifies: give `values` or `log_range` for regularization.l2 (l2 = 1 / (n_train * C) is "
            "scikit-learn's C)."
        )
    _check_folds(body, job, counts, dataset.rows)
    _check_parameters(settings, view, body, len(members))
    spec = body.model_dump(mode="json")
    spec["job"] = job.spec
    spec["select"]["metric"] = spec["select"]["metric"] or ("mse" if job.task == "regression" else "accuracy")
    if job.task == "classification" and spec["select"]["metric"] in ("mse", "r2", "rmse", "mae"):
        raise InvalidInput(f"select.metric {spec['select']['metric']!r} is a regression metric; this study classifies.")
    if job.task == "regression" and spec["select"]["metric"] in ("accuracy", "balanced_accuracy", "log_loss"):
        raise InvalidInput(
            f"select.metric {spec['select']['metric']!r} is a classification metric; this study is a regression."
        )
    folds = body.cv.folds if body.cv else 1
    # Every member trains on the base job's columns (the features it resolved, with their warnings).
    for member in members:
        member.spec["features"], member.spec["exclude_columns"] = job.spec.get("features"), None
    job.kind = "study"
    job.name = body.name
    job.spec = spec
    job.progress_epoch = 0
    job.progress_epochs = len(members) * folds

    def member_rows(study: Job) -> list[StudyMember]:
        return [
            StudyMember(
                study_id=study.id,
                position=position,
                variant=member.variant,
                params=member.params,
                spec=member.spec,
                penalty=member.penalty,
                fold_scores=[None] * folds,
            )
            for position, member in enumerate(members)
        ]

    def rows(study: Job) -> list[Any]:
        return [*member_rows(study), *(records(study) if records is not None else [])]

    return admit(session, settings, job, rows)


def submit(
    session: Session, settings: Settings, tenant_id: str, body: StudyCreate, idempotency_key: str | None
) -> dict[str, Any]:
    """POST /v1/studies: create (at most once per Idempotency-Key) and return the study."""
    return idempotency.run_once(
        session,
        settings,
        tenant_id,
        "POST /v1/studies",
        idempotency_key,
        idempotency.body_hash(body),
        lambda: study_read(session, create_study(session, settings, tenant_id, body)),
    )


def get_study(session: Session, tenant_id: str, study_id: str) -> Job:
    return get_job(session, tenant_id, study_id, kind="study")


def list_members(
    session: Session, tenant_id: str, study_id: str, limit: int, offset: int, sort: str
) -> tuple[list[StudyMember], int]:
    study = get_study(session, tenant_id, study_id)
    query = select(StudyMember).where(StudyMember.study_id == study.id)
    total = session.scalar(select(func.count()).select_from(StudyMember).where(StudyMember.study_id == study.id)) or 0
    if sort == "score":
        lower = study.spec["select"]["metric"] in LOWER_IS_BETTER
        score = StudyMember.mean_score.asc() if lower else StudyMember.mean_score.desc()
        # Members not yet scored come last on both databases.
        query = query.order_by(StudyMember.mean_score.is_(None), score, StudyMember.position)
    else:
        query = query.order_by(StudyMember.position)
    return list(session.scalars(query.limit(limit).offset(offset))), total


def member_read(member: StudyMember) -> MemberRead:
    return MemberRead.model_validate(member)


def study_path(session: Session, tenant_id: str, study_id: str) -> PathRead:
    study = get_study(session, tenant_id, study_id)
    path = (study.result or {}).get("path")
    if path is None:
        if study.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            raise Conflict(f"Study {study_id} is {study.status}; its path is computed when it finishes.")
        raise NotFound(
            f"Study {study_id} has no coefficient path: paths exist for linear regression members solved along a "
            "penalty grid."
        )
    return PathRead.model_validate(path)


def study_read(session: Session, study: Job) -> StudyRead:
    result = study.result or {}
    refit = session.scalar(select(Job.id).where(Job.study_id == study.id))
    spec = study.spec
    members = session.scalar(select(func.count()).select_from(StudyMember).where(StudyMember.study_id == study.id))
    return StudyRead.model_validate(
        {
            "id": study.id,
            "name": study.name,
            "status": study.status,
            "task": study.task,
            "spec": spec,
            "dataset": dataset_ref(study),
            "members": members or 0,
            "metric": spec["select"]["metric"],
            "rule": spec["select"]["rule"],
            "progress": {"fits": study.progress_epoch, "total": study.progress_epochs},
            "best": result.get("best"),
            "one_se": result.get("one_se"),
            "selected": result.get("selected"),
            "test": result.get("test"),
            "refit_job_id": refit,
            "refit_error": result.get("refit_error"),
            "created_at": study.created_at,
            "started_at": study.started_at,
            "finished_at": study.finished_at,
            "error": {
                "type": study.error_type,
                "message": study.error_message or "",
                "reference": study.error_reference,
            }
            if study.error_type
            else None,
        }
    )


def create_pending_refits(session: Session, settings: Settings) -> list[str]:
    """Refit jobs for succeeded studies that asked for one and have none yet: the selected member's spec
    on all non-test rows, as an ordinary job. Run by the scheduler; the unique study_id on jobs makes a
    refit exactly once, however many schedulers race."""
    refitted = select(Job.study_id).where(Job.study_id.is_not(None))
    pending = list(
        session.scalars(
            select(Job).where(
                Job.kind == "study",
                Job.status == JobStatus.SUCCEEDED,
                Job.id.not_in(refitted),
            )
        )
    )
    session.rollback()
    made = []
    for study in pending:
        result = study.result or {}
        if not study.spec.get("refit") or not result.get("selected") or result.get("refit_error"):
            continue
        position = result["selected"]["position"]
        member = session.scalars(
            select(StudyMember).where(StudyMember.study_id == study.id, StudyMember.position == position)
        ).one()
        spec = dict(member.spec)
        spec["training"] = {**spec["training"], "validation_fraction": 0.0, "early_stopping": None}
        spec["name"] = f"refit of study {study.name or study.id}"
        try:
            job = create_job(session, settings, study.tenant_id, JobCreate.model_validate(spec), study_id=study.id)
        except IntegrityError:
            continue
        except Exception as exc:  # a refit that cannot be made is recorded on the study, not retried forever
            session.rollback()
            detail = getattr(exc, "detail", None)
            if detail is None:
                log.exception("the refit of study %s failed", study.id)
                detail = "The refit job could not be created; the failure has been logged."
            result = dict(study.result or {})
            result["refit_error"] = detail
            row = session.get(Job, study.id)
            if row is not None:
                row.result = result
                session.commit()
            continue
        made.append(job.id)
    return made
