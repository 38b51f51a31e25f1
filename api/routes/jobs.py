from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, status
from fastapi.responses import StreamingResponse

from api.deps import IdempotencyKeyDep, Reader, SessionDep, SettingsDep, Writer
from api.schemas.common import ErrorRead, Limit, Offset
from api.schemas.job import JobCreate, JobPage, JobRead, JobStatusName, MetricsRead, RetrainRead, WeightsRead
from api.schemas.prediction import PredictionRead, PredictRequest
from api.services import artifacts, jobs

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorRead, "description": "No job with this id."}}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobRead,
    responses={
        422: {"description": "The spec is invalid or names an unknown dataset."},
        429: {"model": ErrorRead, "description": "Too many jobs are queued; retry later (see Retry-After)."},
    },
)
def create_job(
    body: Annotated[JobCreate, Body()],
    caller: Writer,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyDep = None,
) -> JobRead:
    """Submit a training job; it is queued and trained by a worker. Defaults are filled in the stored spec."""
    return JobRead.model_validate(jobs.submit(session, settings, caller.tenant_id, body, idempotency_key))


@router.get("", response_model=JobPage)
def list_jobs(
    caller: Reader,
    session: SessionDep,
    status: Annotated[JobStatusName | None, Query(description="Only jobs in this status.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> JobPage:
    """List jobs, newest first."""
    items, total = jobs.list_jobs(session, caller.tenant_id, status, limit, offset)
    return JobPage(items=[jobs.job_read(job) for job in items], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobRead, responses=NOT_FOUND)
def get_job(job_id: str, caller: Reader, session: SessionDep) -> JobRead:
    """A job: its status, progress, normalized spec, and its result once it has succeeded."""
    return jobs.job_read(jobs.get_job(session, caller.tenant_id, job_id))


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses={**NOT_FOUND, 409: {"model": ErrorRead, "description": "The job has already finished."}},
)
def cancel_job(job_id: str, caller: Writer, session: SessionDep) -> JobRead:
    """Cancel a queued job at once, or stop a running one at its next step; what it recorded is kept."""
    return jobs.job_read(jobs.cancel_job(session, caller.tenant_id, job_id))


@router.get("/{job_id}/metrics", response_model=MetricsRead, responses=NOT_FOUND)
def get_metrics(job_id: str, caller: Reader, session: SessionDep) -> MetricsRead:
    """Per-epoch metrics: data loss and penalty terms kept apart, validation metrics, weight norms."""
    return MetricsRead.model_validate({"epochs": jobs.job_metrics(session, caller.tenant_id, job_id)})


@router.get("/{job_id}/weights", response_model=WeightsRead, responses=NOT_FOUND)
def get_weights(
    job_id: str,
    caller: Reader,
    session: SessionDep,
    epoch: Annotated[int | None, Query(ge=1, description="Epoch (default: the final weights).")] = None,
) -> WeightsRead:
    """Per-layer weight statistics (norms, exact and near-zero sparsity, histogram) at an epoch."""
    return WeightsRead.model_validate(jobs.job_weights(session, caller.tenant_id, job_id, epoch))


NO_WEIGHTS = "The job has no weights: it is queued or running, or stopped before finishing an epoch."


@router.get(
    "/{job_id}/artifact",
    response_class=StreamingResponse,
    responses={
        **NOT_FOUND,
        409: {"model": ErrorRead, "description": NO_WEIGHTS},
        200: {
            "content": {"application/octet-stream": {}},
            "description": "safetensors file; tensor names are the layer names of /weights.",
            "headers": {
                "X-Regtrain-Partial": {
                    "description": "`true` when the job stopped before training finished (canceled, timed out or "
                    "failed) and these are the weights of its last checkpoint; else `false`.",
                    "schema": {"type": "string", "enum": ["true", "false"]},
                },
                "X-Regtrain-Epoch": {
                    "description": "The epoch whose weights the file holds (absent for jobs trained before it "
                    "was recorded).",
                    "schema": {"type": "integer"},
                },
            },
        },
    },
)
def get_artifact(job_id: str, caller: Reader, session: SessionDep, settings: SettingsDep) -> StreamingResponse:
    """The trained weights as safetensors, with the normalized spec, feature names, class labels and
    standardization statistics in its metadata; a stopped job's last checkpointed weights, marked partial."""
    download = artifacts.open_artifact(session, settings, caller.tenant_id, job_id)
    return StreamingResponse(download.chunks, media_type="application/octet-stream", headers=download.headers)


@router.post(
    "/{job_id}/predict",
    response_model=PredictionRead,
    response_model_exclude_none=True,
    responses={
        **NOT_FOUND,
        409: {"model": ErrorRead, "description": NO_WEIGHTS},
        413: {"model": ErrorRead, "description": "More rows than one request may carry."},
    },
)
def predict(
    job_id: str, body: PredictRequest, caller: Reader, session: SessionDep, settings: SettingsDep
) -> PredictionRead:
    """Predict with a job's weights: raw feature rows in, class labels (with probabilities) or values out.
    A job that stopped before training finished answers from its last checkpoint, marked `partial`."""
    return PredictionRead.model_validate(artifacts.predict_rows(session, settings, caller.tenant_id, job_id, body))


@router.post(
    "/{job_id}/retrain",
    status_code=status.HTTP_201_CREATED,
    response_model=RetrainRead,
    responses={
        **NOT_FOUND,
        422: {"model": ErrorRead, "description": "The dataset's newest version no longer fits the spec."},
        429: {"model": ErrorRead, "description": "Too many jobs are queued; retry later (see Retry-After)."},
    },
)
def retrain(job_id: str, caller: Writer, session: SessionDep, settings: SettingsDep) -> RetrainRead:
    """A new job with the same spec on the newest version of the same dataset; says what changed."""
    return RetrainRead.model_validate(jobs.retrain(session, settings, caller.tenant_id, job_id))
