"""Job use cases: submit, retrain, read, list, cancel, and the job's metrics and weight statistics.

Every path that creates a job (POST /v1/jobs, retrain, a schedule's trigger and its slots) goes through
`create_job`, which applies the server's and the tenant's limits. Every read is scoped to the caller's
tenant: another tenant's job is answered exactly as an unknown id."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.schemas.job import JobCreate, JobRead, LayerRead
from api.services import idempotency, quotas
from api.services.datasets import resolve_dataset
from api.services.training_data import TrainingView, check_splits, training_view
from core.architecture import output_units, parameter_shapes, unmatched_exclude_patterns
from core.celery_app import enqueue_job
from core.errors import Conflict, InvalidInput, NotFound
from core.queues import queue_for_device
from core.settings import Settings
from models import EpochMetric, Job, JobStatus, LayerStat, record_event, status_event, transition
from models.base import new_id, utcnow


def build_job(
    session: Session,
    settings: Settings,
    tenant_id: str,
    body: JobCreate,
    *,
    schedule_id: str | None = None,
    scheduled_for: datetime | None = None,
    parent_id: str | None = None,
    study_id: str | None = None,
) -> Job:
    """Validate a job against its dataset (resolved now) and the server's limits, and build its row,
    not yet added to the session."""
    dataset = resolve_dataset(session, tenant_id, body.dataset)
    view = training_view(
        dataset, body.target, body.task, body.features, body.exclude_columns, max_categories=settings.max_categories
    )
    if body.training.epochs > settings.max_epochs:
        raise InvalidInput(
            f"training.epochs is {body.training.epochs}, above this server's limit of {settings.max_epochs}."
        )
    if body.model.type == "cnn" and view.image_shape is None:
        raise InvalidInput(
            f"A cnn needs image-shaped data (N, C, H, W) and {body.dataset!r} is tabular; use 'mlp' or 'linear'."
        )
    if body.training.class_weight is not None and view.task == "regression":
        raise InvalidInput(
            "training.class_weight weighs classes and this is a regression job; leave it out (or null), "
            "or set task to 'classification'."
        )
    if view.incomplete and body.training.missing == "refuse":
        listed = ", ".join(f"{name!r} ({count})" for name, count in view.incomplete.items())
        raise InvalidInput(
            f"Dataset {body.dataset!r} has missing or non-finite values in {listed}; set training.missing to 'drop' "
            "(leave those rows out) or 'mean' (fill numbers with the training split's mean)."
        )
    check_splits(view, dataset.rows, body.training.validation_fraction, body.training.test_fraction)
    cells = dataset.rows * view.n_features
    if cells > settings.max_cells:
        raise InvalidInput(
            f"{dataset.rows:,} rows x {view.n_features:,} features is {cells:,} values, above this server's limit of "
            f"{settings.max_cells:,}."
        )
    spec = body.model_dump(mode="json")
    spec["target"] = view.target
    if view.features is not None:
        # The resolved columns, so that a retrain (or a run of a copied spec) trains on the same ones; the
        # exclusions are applied in that list (and `features` with `exclude_columns` is no valid spec).
        spec["features"] = view.features
        spec["exclude_columns"] = None
    check_network(spec, view, settings.max_parameters)
    return Job(
        # Assigned here, not at flush, so that records made with the job (a schedule's run) can name it.
        id=new_id(),
        tenant_id=tenant_id,
        name=body.name,
        status=JobStatus.QUEUED.value,
        spec=spec,
        task=view.task,
        task_reason=view.task_reason,
        device=body.device,
        queue=queue_for_device(body.device),
        dataset_ref=body.dataset,
        dataset_id=dataset.id,
        dataset_name=dataset.name,
        dataset_version=dataset.version,
        dataset_sha256=dataset.sha256,
        progress_epoch=0,
        progress_epochs=body.training.epochs,
        attempts=0,
        schedule_id=schedule_id,
        scheduled_for=scheduled_for,
        parent_id=parent_id,
        study_id=study_id,
        enqueued_at=utcnow(),
        warnings=list(view.warnings),
    )


def create_job(
    session: Session,
    settings: Settings,
    tenant_id: str,
    body: JobCreate,
    *,
    records: Callable[[Job], Iterable[Any]] | None = None,
    **lineage: Any,
) -> Job:
    """A training job from a request body: validated against its dataset, then admitted."""
    return admit(session, settings, build_job(session, settings, tenant_id, body, **lineage), records)


def admit(session: Session, settings: Settings, job: Job, records: Callable[[Job], Iterable[Any]] | None = None) -> Job:
    """The one way a job (or a study) comes to exist: the server's and the tenant's limits, the row (with
    any records made from it that must be committed with it, such as a schedule's slot or a study's
    members), commit, then the message.
    An IntegrityError from the commit (a slot another scheduler took) reaches the caller, rolled back."""
    quotas.check_new_jobs(session, settings, job.tenant_id)
    session.add(job)
    session.flush()
    record_event(session, job.id, "status", status_event(job))
    if records is not None:
        session.add_all(list(records(job)))
    # Commit, then enqueue: the row exists before any message names it.
    try:
        session.commit()
    except Exception:
        session.rollback()
        raise
    enqueue_job(job.id, job.queue)
    return job


def check_network(spec: dict[str, Any], view: TrainingView, max_parameters: int) -> None:
    n_outputs = output_units(view.task, view.n_classes)
    shapes = parameter_shapes(spec["model"], view.n_features, n_outputs, view.image_shape)
    count = sum(math.prod(shape) for _, shape in shapes)
    if count > max_parameters:
        raise InvalidInput(
            f"This network has {count:,} parameters, above this server's limit of {max_parameters:,}; use fewer or "
            "narrower layers."
        )
    names = [name for name, _ in shapes]
    unmatched = unmatched_exclude_patterns(spec["regularization"]["exclude"], names)
    if unmatched:
        raise InvalidInput(
            f"regularization.exclude pattern(s) {', '.join(map(repr, unmatched))} match no tensor of this network; "
            f"its tensors are {', '.join(names)}."
        )


def submit(
    session: Session, settings: Settings, tenant_id: str, body: JobCreate, idempotency_key: str | None
) -> dict[str, Any]:
    """POST /v1/jobs: create (at most once per Idempotency-Key) and return the job."""
    return idempotency.run_once(
        session,
        settings,
        tenant_id,
        "POST /v1/jobs",
        idempotency_key,
        idempotency.body_hash(body),
        lambda: job_read(create_job(session, settings, tenant_id, body)),
    )


def retrain(session: Session, settings: Settings, tenant_id: str, job_id: str) -> dict[str, Any]:
    """The same spec on the newest version of the same dataset name."""
    parent = get_job(session, tenant_id, job_id)
    spec = dict(parent.spec)
    if not parent.dataset_id.startswith("builtin:"):
        spec["dataset"] = f"{parent.dataset_name}@latest"
    job = create_job(session, settings, tenant_id, JobCreate.model_validate(spec), parent_id=parent.id)
    changes = {}
    if job.dataset_version != parent.dataset_version or job.dataset_sha256 != parent.dataset_sha256:
        changes["dataset"] = {
            "from": {"version": parent.dataset_version, "sha256": parent.dataset_sha256},
            "to": {"version": job.dataset_version, "sha256": job.dataset_sha256},
        }
    return {"job": job_read(job), "changes": changes}


def get_job(session: Session, tenant_id: str, job_id: str, kind: str = "train") -> Job:
    """The caller's job (or study, with kind "study"); anything else is as unknown as a made-up id."""
    job = session.get(Job, job_id)
    if job is None or job.tenant_id != tenant_id or job.kind != kind:
        raise NotFound(f"There is no {'study' if kind == 'study' else 'job'} with id {job_id!r}.")
    return job


def list_jobs(
    session: Session, tenant_id: str, status: str | None, limit: int, offset: int, kind: str = "train"
) -> tuple[list[Job], int]:
    query = select(Job).where(Job.tenant_id == tenant_id, Job.kind == kind)
    if status is not None:
        query = query.where(Job.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    jobs = session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit).offset(offset))
    return list(jobs), total


def cancel_job(session: Session, tenant_id: str, job_id: str, kind: str = "train") -> Job:
    """Queued jobs are canceled at once; a running job is marked canceled and its worker, which checks
    at every step boundary, stops and keeps what it recorded."""
    job = get_job(session, tenant_id, job_id, kind)
    updated = transition(
        session, job_id, JobStatus.CANCELED, error_type="canceled", error_message="Canceled on request."
    )
    if updated is None:
        session.rollback()
        current = get_job(session, tenant_id, job_id, kind)
        session.refresh(current)
        what, plural = ("Study", "studies") if kind == "study" else ("Job", "jobs")
        raise Conflict(
            f"{what} {job_id} has already {current.status}; only queued or running {plural} can be canceled."
        )
    session.commit()
    session.refresh(job)
    return job


def job_metrics(session: Session, tenant_id: str, job_id: str) -> list[dict[str, Any]]:
    job = get_job(session, tenant_id, job_id)
    rows = session.scalars(select(EpochMetric).where(EpochMetric.job_id == job_id).order_by(EpochMetric.epoch))
    epochs = []
    for row in rows:
        entry: dict[str, Any] = {
            "epoch": row.epoch,
            "train_data_loss": row.train_data_loss,
            "l1_penalty": row.l1_penalty,
            "l2_penalty": row.l2_penalty,
            "val_data_loss": row.val_data_loss,
            "l1_norm": row.l1_norm,
            "l2_norm": row.l2_norm,
            "zero_fraction": row.zero_fraction,
            "lr": row.lr,
            "seconds": row.seconds,
        }
        if job.task == "classification":
            entry["val_accuracy"] = row.val_accuracy
        else:
            entry.update(val_r2=row.val_r2, val_rmse=row.val_rmse)
        epochs.append(entry)
    return epochs


def job_weights(session: Session, tenant_id: str, job_id: str, epoch: int | None) -> dict[str, Any]:
    job = get_job(session, tenant_id, job_id)
    recorded = list(
        session.scalars(select(EpochMetric.epoch).where(EpochMetric.job_id == job_id).order_by(EpochMetric.epoch))
    )
    if not recorded:
        raise NotFound(f"Job {job_id} has no weight statistics yet; they appear after its first epoch.")
    # By default, the weights the artifact holds: the best epoch's when early stopping restored them.
    final = (job.result or {}).get("weights_epoch", recorded[-1])
    chosen = final if epoch is None else epoch
    if chosen not in recorded:
        raise NotFound(
            f"Job {job_id} has no weight statistics for epoch {epoch}; recorded epochs are "
            f"{recorded[0]} to {recorded[-1]}."
        )
    totals = session.scalars(select(EpochMetric).where(EpochMetric.job_id == job_id, EpochMetric.epoch == chosen)).one()
    layers = session.scalars(
        select(LayerStat).where(LayerStat.job_id == job_id, LayerStat.epoch == chosen).order_by(LayerStat.position)
    )
    return {
        "epoch": chosen,
        "epochs_recorded": recorded,
        "layers": [_layer_dict(layer) for layer in layers],
        "total": {
            "count": totals.weight_count,
            "l1_norm": totals.l1_norm,
            "l2_norm": totals.l2_norm,
            "max_abs": totals.max_abs,
            "zero_fraction": totals.zero_fraction,
            "near_zero_fraction": totals.near_zero_fraction,
        },
    }


def _layer_dict(layer: LayerStat) -> dict[str, Any]:
    # The response schema reads the row itself (from_attributes): a column it names cannot be left out.
    return LayerRead.model_validate(layer).model_dump()


def dataset_ref(job: Job) -> dict[str, Any]:
    """The exact dataset a job trained on: id, name, version and sha256."""
    return job.dataset


def job_read(job: Job) -> JobRead:
    """The API's view of a job row, read from the row itself."""
    return JobRead.model_validate(job)
