from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from api.deps import Reader, SessionDep, SettingsDep, Writer
from api.schemas.common import ErrorRead, Limit, Offset
from api.schemas.job import JobRead
from api.schemas.schedule import RunPage, ScheduleCreate, SchedulePage, ScheduleRead, ScheduleUpdate
from api.schemas.study import StudyRead
from api.services import schedules, studies
from api.services.jobs import job_read

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorRead, "description": "No schedule with this id."}}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ScheduleRead)
def create_schedule(body: ScheduleCreate, caller: Writer, session: SessionDep, settings: SettingsDep) -> ScheduleRead:
    """Create a cron schedule that submits its job template at each slot (exactly once per slot)."""
    made = schedules.create_schedule(session, settings, caller.tenant_id, body, schedules.now())
    return ScheduleRead.model_validate(schedules.schedule_read(made))


@router.get("", response_model=SchedulePage)
def list_schedules(caller: Reader, session: SessionDep, limit: Limit = 50, offset: Offset = 0) -> SchedulePage:
    """List schedules, newest first, with their next slot."""
    rows, total = schedules.list_schedules(session, caller.tenant_id, limit, offset)
    items = [ScheduleRead.model_validate(schedules.schedule_read(s)) for s in rows]
    return SchedulePage(items=items, total=total, limit=limit, offset=offset)


@router.get("/{schedule_id}", response_model=ScheduleRead, responses=NOT_FOUND)
def get_schedule(schedule_id: str, caller: Reader, session: SessionDep) -> ScheduleRead:
    """A schedule and its next slot."""
    return ScheduleRead.model_validate(
        schedules.schedule_read(schedules.get_schedule(session, caller.tenant_id, schedule_id))
    )


@router.patch("/{schedule_id}", response_model=ScheduleRead, responses=NOT_FOUND)
def update_schedule(
    schedule_id: str, body: ScheduleUpdate, caller: Writer, session: SessionDep, settings: SettingsDep
) -> ScheduleRead:
    """Change a schedule (enable, disable, cron, template...); it takes effect from the next slot."""
    changed = schedules.update_schedule(session, settings, caller.tenant_id, schedule_id, body, schedules.now())
    return ScheduleRead.model_validate(schedules.schedule_read(changed))


@router.delete("/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_schedule(schedule_id: str, caller: Writer, session: SessionDep) -> None:
    """Delete a schedule; the jobs it made are kept."""
    schedules.delete_schedule(session, caller.tenant_id, schedule_id)


@router.post(
    "/{schedule_id}/trigger",
    status_code=status.HTTP_201_CREATED,
    response_model=JobRead | StudyRead,
    responses={
        **NOT_FOUND,
        409: {"model": ErrorRead, "description": "Triggered at this same instant already; retry."},
        422: {"model": ErrorRead, "description": "The template no longer fits its dataset."},
        429: {"model": ErrorRead, "description": "Too many jobs are queued; retry later (see Retry-After)."},
    },
)
def trigger(schedule_id: str, caller: Writer, session: SessionDep, settings: SettingsDep) -> JobRead | StudyRead:
    """Run the schedule's job (or study) now, outside its calendar."""
    made = schedules.trigger(session, settings, caller.tenant_id, schedule_id, schedules.now())
    return studies.study_read(session, made) if made.kind == "study" else job_read(made)


@router.get("/{schedule_id}/runs", response_model=RunPage, responses=NOT_FOUND)
def list_runs(
    schedule_id: str,
    caller: Reader,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> RunPage:
    """Its slots, newest first: the job each started (status, dataset version, validation metric and
    its change from the previous successful run), or why the slot was skipped."""
    items, total = schedules.list_runs(session, caller.tenant_id, schedule_id, limit, offset)
    return RunPage.model_validate({"items": items, "total": total, "limit": limit, "offset": offset})
