"""What each dashboard page shows, read through the API's own services and response schemas: the same
tenant scoping (another tenant's id is an unknown id), and nothing the public API does not serve."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.schemas.dataset import DatasetRead
from api.schemas.job import JobCreate, JobRead, WeightsRead
from api.schemas.study import MemberRead, StudyRead
from api.services import datasets, jobs, studies
from api.services.keys import require_scope
from api.ui.auth import Viewer
from core.errors import DomainError
from core.settings import Settings
from models import JobStatus

PAGE_SIZE = 25
Row = TypeVar("Row")
STATUSES = [status.value for status in JobStatus]
TERMINAL = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED}

# The New job form's starting point: a job that trains in seconds and shows what L1 does.
EXAMPLE_JOB: dict[str, Any] = {
    "name": "iris-lasso",
    "dataset": "builtin:iris",
    "model": {"type": "linear"},
    "regularization": {"l1": 0.002},
    "training": {"epochs": 30, "validation_fraction": 0.2, "seed": 0},
}

JOB_PLOTS = (
    ("learning_curves", "Learning curves"),
    ("penalties", "Penalty terms"),
    ("sparsity", "Sparsity"),
    ("weights", "Weight histograms"),
)
STUDY_PLOTS = (
    ("cv_curve", "Cross-validated score"),
    ("paths", "Coefficient paths"),
    ("variants", "Variants compared"),
)


@dataclass(frozen=True)
class Pager:
    """One page of a listing: 1-based, newest first, with the links' page numbers."""

    page: int
    total: int
    size: int = PAGE_SIZE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def first_item(self) -> int:
        return min(self.total, self.offset + 1)

    @property
    def last_item(self) -> int:
        return min(self.total, self.offset + self.size)

    @property
    def previous(self) -> int | None:
        return self.page - 1 if self.page > 1 else None

    @property
    def next(self) -> int | None:
        return self.page + 1 if self.page < self.pages else None


def _pager(page: int, fetch: Callable[[int, int], tuple[list[Row], int]]) -> tuple[Pager, list[Row]]:
    """The page's rows, from a listing service called with (limit, offset), and the pager for its links."""
    rows, total = fetch(PAGE_SIZE, (page - 1) * PAGE_SIZE)
    return Pager(page, total), rows


def job_list(session: Session, viewer: Viewer, status: JobStatus | None, page: int) -> dict[str, Any]:
    pager, rows = _pager(
        page, lambda limit, offset: jobs.list_jobs(session, viewer.caller.tenant_id, status, limit, offset)
    )
    return {"jobs": [jobs.job_read(row) for row in rows], "pager": pager, "status": status, "statuses": STATUSES}


def _job_plots(job: JobRead, epochs: list[dict[str, Any]], weights: WeightsRead | None) -> list[dict[str, Any]]:
    """The job's plots, each marked ready when it can be drawn (GET .../plots answers 409 until then, so
    the page shows no image for it): every plot needs a recorded epoch, the penalty terms need an L1 or L2
    penalty, the histograms need weight statistics. The live page adds the learning curves at the first
    epoch."""
    penalized = job.spec.regularization.l1 > 0 or job.spec.regularization.l2 > 0
    ready = {
        "learning_curves": bool(epochs),
        "penalties": bool(epochs) and penalized,
        "sparsity": bool(epochs),
        "weights": weights is not None and bool(weights.layers),
    }
    return [
        {
            "name": name,
            "title": title,
            "url": f"/v1/jobs/{job.id}/plots/{name}.svg",
            "ready": ready[name],
            "wide": name == "weights",
        }
        for name, title in JOB_PLOTS
    ]


def _metric_column(job: JobRead) -> tuple[str, str]:
    return ("val_accuracy", "Val accuracy") if job.task == "classification" else ("val_r2", "Val R²")


def job_detail(session: Session, viewer: Viewer, job_id: str) -> dict[str, Any]:
    tenant = viewer.caller.tenant_id
    job = jobs.job_read(jobs.get_job(session, tenant, job_id))
    epochs = jobs.job_metrics(session, tenant, job_id)
    weights = WeightsRead.model_validate(jobs.job_weights(session, tenant, job_id, None)) if epochs else None
    metric, metric_title = _metric_column(job)
    return {
        "job": job,
        "live": job.status not in TERMINAL,
        "epochs": list(reversed(epochs)),
        "metric": metric,
        "metric_title": metric_title,
        "weights": weights,
        "plots": _job_plots(job, epochs, weights),
        "result_rows": _result_rows(job),
        "spec_json": json.dumps(job.spec.model_dump(mode="json"), indent=2),
    }


RESULT_METRICS = (
    ("data_loss", "Data loss"),
    ("accuracy", "Accuracy"),
    ("balanced_accuracy", "Balanced accuracy"),
    ("f1_macro", "F1 (macro)"),
    ("log_loss", "Log loss"),
    ("roc_auc", "ROC AUC"),
    ("r2", "R²"),
    ("rmse", "RMSE"),
    ("mae", "MAE"),
)


def _result_rows(job: JobRead) -> dict[str, Any] | None:
    """The result's split metrics as a table: one row per split, the columns this task has."""
    if job.result is None:
        return None
    splits = [("Training", job.result.train), ("Validation", job.result.validation), ("Test", job.result.test)]
    present = [(label, dict(metrics)) for label, metrics in splits if metrics is not None]
    columns = [(key, title) for key, title in RESULT_METRICS if any(key in metrics for _, metrics in present)]
    return {"columns": columns, "rows": present}


def new_job_form(
    session: Session, viewer: Viewer, spec_text: str | None = None, dataset: str = "", errors: list[str] | None = None
) -> dict[str, Any]:
    """The New job form: the spec as JSON, prefilled with a working example, and a dataset picker."""
    if spec_text is None:
        spec_text = json.dumps({**EXAMPLE_JOB, "dataset": dataset or EXAMPLE_JOB["dataset"]}, indent=2)
        dataset = ""
    rows, _ = datasets.list_datasets(session, viewer.caller.tenant_id, None, 500, 0)
    names = list(dict.fromkeys(row.name for row in rows))
    return {
        "spec_text": spec_text,
        "dataset": dataset,
        "builtins": datasets.builtin_reads(),
        "uploaded": [f"{name}@latest" for name in names],
        "errors": errors or [],
    }


def _validation_sentences(error: ValidationError) -> list[str]:
    sentences = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        sentences.append(f"{where}: {message}." if where else f"{message}.")
    return sentences


@dataclass(frozen=True)
class Rejected:
    """The New job form again, with what to change in sentences, and the status POST /v1/jobs would answer."""

    form: dict[str, Any]
    status_code: int


def submit_job(session: Session, settings: Settings, viewer: Viewer, spec_text: str, dataset: str) -> str | Rejected:
    """POST /v1/jobs's own path (the same validation, limits and service): the new job's id, or the form
    again. The picker's dataset, when one is chosen, replaces the spec's."""

    def again(sentences: list[str], status_code: int = 422) -> Rejected:
        return Rejected(new_job_form(session, viewer, spec_text, dataset, sentences), status_code)

    try:
        spec = json.loads(spec_text)
    except json.JSONDecodeError as error:
        return again([f"The spec is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."])
    if not isinstance(spec, dict):
        return again(['The spec must be a JSON object, such as the example: {"dataset": "builtin:iris", ...}.'])
    if dataset:
        spec["dataset"] = dataset
    try:
        caller = require_scope(viewer.caller, "write")
        body = JobCreate.model_validate(spec)
        created = jobs.submit(session, settings, caller.tenant_id, body, None)
    except ValidationError as error:
        return again(_validation_sentences(error))
    except DomainError as error:
        return again([error.detail], error.status_code)
    return str(created["id"])


def cancel_job(session: Session, viewer: Viewer, job_id: str) -> None:
    """POST /v1/jobs/{id}/cancel's scope and service: 404 for an unknown id, 409 once the job has finished."""
    jobs.cancel_job(session, require_scope(viewer.caller, "write").tenant_id, job_id)


def study_list(session: Session, viewer: Viewer, status: JobStatus | None, page: int) -> dict[str, Any]:
    pager, rows = _pager(
        page,
        lambda limit, offset: jobs.list_jobs(session, viewer.caller.tenant_id, status, limit, offset, kind="study"),
    )
    return {
        "studies": [studies.study_read(session, row) for row in rows],
        "pager": pager,
        "status": status,
        "statuses": STATUSES,
    }


# The grid axes a CV curve is drawn against, as GET /v1/studies/{id}/plots/cv_curve picks them.
PENALTY_AXES = ("regularization.elastic_net.alpha", "regularization.l1", "regularization.l2")
# Enough to read every member of the largest study a server allows.
ALL_MEMBERS = 1_000_000


def _scored(member: MemberRead) -> bool:
    """A member the plots can place: its mean, or (while the study runs) a finished fold's score."""
    return member.mean is not None or any(score is not None and math.isfinite(score) for score in member.fold_scores)


def _study_plots(session: Session, tenant_id: str, study: StudyRead) -> list[dict[str, Any]]:
    """The plots that can be drawn for this study now (GET .../plots answers 409 for the others, so the
    page shows no image for them): the CV curve along a penalty axis once a member with a penalty above 0
    is scored; the coefficient paths once a study of path-solved linear members has computed them; the
    comparison of variants once a variant is scored (or of members, for a grid with no penalty axis)."""
    rows, _ = studies.list_members(session, tenant_id, study.id, ALL_MEMBERS, 0, "position")
    scored = [member for member in map(studies.member_read, rows) if _scored(member)]
    search = study.spec.get("search") or {}
    axis = next((name for name in PENALTY_AXES if name in search), None)
    curve = axis is not None and any((member.params.get(axis) or 0) > 0 for member in scored)
    applies = {
        "cv_curve": curve,
        "paths": _has_paths(session, tenant_id, study.id),
        "variants": bool(scored) and (bool(study.spec.get("variants")) or not curve),
    }
    return [
        {"name": name, "title": title, "url": f"/v1/studies/{study.id}/plots/{name}.svg", "wide": name == "paths"}
        for name, title in STUDY_PLOTS
        if applies[name]
    ]


def _has_paths(session: Session, tenant_id: str, study_id: str) -> bool:
    try:
        studies.study_path(session, tenant_id, study_id)
    except DomainError:
        return False
    return True


def study_detail(session: Session, viewer: Viewer, study_id: str, sort: str, page: int) -> dict[str, Any]:
    tenant = viewer.caller.tenant_id
    study = studies.study_read(session, studies.get_study(session, tenant, study_id))
    pager, rows = _pager(
        page, lambda limit, offset: studies.list_members(session, tenant, study_id, limit, offset, sort)
    )
    members: list[MemberRead] = [studies.member_read(row) for row in rows]
    axes = list((study.spec.get("search") or {}).keys())
    return {
        "study": study,
        "live": study.status not in TERMINAL,
        "members": members,
        "axes": [(axis, axis.removeprefix("regularization.")) for axis in axes],
        "has_variants": bool(study.spec.get("variants")),
        "folds": (study.spec.get("cv") or {}).get("folds"),
        "sort": sort,
        "pager": pager,
        "plots": _study_plots(session, tenant, study),
        "chosen": {
            "best": study.best.position if study.best else None,
            "one_se": study.one_se.position if study.one_se else None,
            "selected": study.selected.position if study.selected else None,
        },
        "spec_json": json.dumps(study.spec, indent=2),
    }


def dataset_list(session: Session, viewer: Viewer, page: int) -> dict[str, Any]:
    pager, rows = _pager(
        page, lambda limit, offset: datasets.list_datasets(session, viewer.caller.tenant_id, None, limit, offset)
    )
    return {
        "datasets": [DatasetRead.model_validate(datasets.dataset_read(row)) for row in rows],
        "pager": pager,
        "builtins": datasets.builtin_reads(),
    }


def dataset_detail(session: Session, viewer: Viewer, dataset_id: str) -> dict[str, Any]:
    row = datasets.get_dataset(session, viewer.caller.tenant_id, dataset_id)
    return {"dataset": DatasetRead.model_validate(datasets.dataset_read(row))}
