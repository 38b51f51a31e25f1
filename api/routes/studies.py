from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, status

from api.deps import IdempotencyKeyDep, Reader, SessionDep, SettingsDep, Writer
from api.schemas.common import ErrorRead, Limit, Offset
from api.schemas.job import JobStatusName
from api.schemas.study import MemberPage, PathRead, StudyCreate, StudyPage, StudyRead
from api.services import jobs, studies

router = APIRouter(prefix="/v1/studies", tags=["studies"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorRead, "description": "No study with this id."}}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=StudyRead,
    responses={
        422: {"description": "The study, a member's spec or the cross-validation does not fit the data or limits."},
        429: {"model": ErrorRead, "description": "Too many jobs are queued; retry later (see Retry-After)."},
    },
)
def create_study(
    body: Annotated[StudyCreate, Body()],
    caller: Writer,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyDep = None,
) -> StudyRead:
    """Submit a study: a base job with a grid and/or variants, cross-validated and trained together, and a
    selection rule (min or glmnet's 1-SE), optionally refit as an ordinary job."""
    return StudyRead.model_validate(studies.submit(session, settings, caller.tenant_id, body, idempotency_key))


@router.get("", response_model=StudyPage)
def list_studies(
    caller: Reader,
    session: SessionDep,
    status: Annotated[JobStatusName | None, Query(description="Only studies in this status.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> StudyPage:
    """List studies, newest first."""
    rows, total = jobs.list_jobs(session, caller.tenant_id, status, limit, offset, kind="study")
    items = [studies.study_read(session, row) for row in rows]
    return StudyPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/{study_id}", response_model=StudyRead, responses=NOT_FOUND)
def get_study(study_id: str, caller: Reader, session: SessionDep) -> StudyRead:
    """A study: status, progress, the best and 1-SE members with their scores, the refit job."""
    return studies.study_read(session, studies.get_study(session, caller.tenant_id, study_id))


@router.post(
    "/{study_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=StudyRead,
    responses={**NOT_FOUND, 409: {"model": ErrorRead, "description": "The study has already finished."}},
)
def cancel_study(study_id: str, caller: Writer, session: SessionDep) -> StudyRead:
    """Cancel a queued study at once, or stop a running one at its next step; finished members are kept."""
    return studies.study_read(session, jobs.cancel_job(session, caller.tenant_id, study_id, kind="study"))


@router.get("/{study_id}/members", response_model=MemberPage, responses=NOT_FOUND)
def list_members(
    study_id: str,
    caller: Reader,
    session: SessionDep,
    sort: Annotated[
        Literal["position", "score"], Query(description="Grid order, or best mean score first.")
    ] = "position",
    limit: Limit = 50,
    offset: Offset = 0,
) -> MemberPage:
    """A study's members: parameters, variant, mean and standard error of the selection metric, per-fold
    scores, training score, nonzero weights, epochs, final and best-epoch scores."""
    rows, total = studies.list_members(session, caller.tenant_id, study_id, limit, offset, sort)
    items = [studies.member_read(m) for m in rows]
    return MemberPage(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/{study_id}/path",
    response_model=PathRead,
    responses={**NOT_FOUND, 409: {"model": ErrorRead, "description": "The study has not finished yet."}},
)
def get_path(study_id: str, caller: Reader, session: SessionDep) -> PathRead:
    """Coefficients against the penalty, per l1_ratio, for linear members solved along a path."""
    return studies.study_path(session, caller.tenant_id, study_id)
