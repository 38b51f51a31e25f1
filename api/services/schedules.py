"""Schedules: CRUD, their runs, and firing due slots. Time is a parameter (`now`) so that the firing
rules can be tested on any calendar without waiting.

Firing a slot inserts its schedule_run row and its job in one transaction; the unique key on
(schedule_id, scheduled_for) lets exactly one scheduler win a slot, however many race for it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.schemas.job import JobCreate
from api.schemas.schedule import ScheduleCreate, ScheduleRead, ScheduleUpdate
from api.schemas.study import StudyCreate
from api.services import studies
from api.services.jobs import build_job, create_job, dataset_ref
from core.errors import Conflict, DomainError, InvalidInput, NotFound
from core.settings import Settings
from models import Job, JobStatus, Schedule, ScheduleRun
from models.base import utcnow
from scheduler.cron import Cron, CronError, timezone

log = logging.getLogger(__name__)

# A slot that came due less than this long ago is on time; an older one was missed (no scheduler ran).
ON_TIME_GRACE = timedelta(seconds=60)


def _cron(expression: str, zone: str) -> tuple[Cron, Any]:
    try:
        return Cron.parse(expression), timezone(zone)
    except CronError as exc:
        raise InvalidInput(f"The schedule's cron or time zone is invalid: {exc}.") from exc


def next_slot(expression: str, zone: str, after: datetime) -> datetime:
    cron, tz = _cron(expression, zone)
    try:
        return cron.next_after(after, tz)
    except CronError as exc:
        raise InvalidInput(f"The schedule's cron expression is invalid: {exc}.") from exc


def _template(job: JobCreate | None, study: StudyCreate | None) -> dict[str, Any]:
    """What a schedule stores: a job body as given, or {"study": <a study body as given>} (a job body
    never has a `study` field)."""
    if study is not None:
        return {"study": study.model_dump(mode="json", exclude_unset=True)}
    assert job is not None
    return job.model_dump(mode="json", exclude_unset=True)


def _validate_template(
    session: Session, settings: Settings, tenant_id: str, job: JobCreate | None, study: StudyCreate | None
) -> None:
    """Exactly the checks of POST /v1/jobs (or /v1/studies), without creating anything."""
    if study is not None:
        studies.plan_members(session, settings, tenant_id, study)
        build_job(session, settings, tenant_id, study.job)
    elif job is not None:
        build_job(session, settings, tenant_id, job)


def start_from_template(
    session: Session,
    settings: Settings,
    tenant_id: str,
    template: dict[str, Any],
    records: Callable[[Job], Iterable[Any]],
    **lineage: Any,
) -> Job:
    """A schedule's run: its job, or its study, through the one function that admits work (jobs.admit)."""
    if "study" in template:
        body = StudyCreate.model_validate(template["study"])
        return studies.create_study(session, settings, tenant_id, body, records=records, **lineage)
    return create_job(session, settings, tenant_id, JobCreate.model_validate(template), records=records, **lineage)


def create_schedule(
    session: Session, settings: Settings, tenant_id: str, body: ScheduleCreate, now: datetime
) -> Schedule:
    first = next_slot(body.cron, body.timezone, now)
    _validate_template(session, settings, tenant_id, body.job, body.study)
    schedule = Schedule(
        tenant_id=tenant_id,
        name=body.name,
        cron=body.cron,
        timezone=body.timezone,
        job_template=_template(body.job, body.study),
        enabled=body.enabled,
        overlap=body.overlap,
        catch_up=body.catch_up,
        next_run_at=first if body.enabled else None,
        created_at=now,
        updated_at=now,
    )
    session.add(schedule)
    session.commit()
    return schedule


def get_schedule(session: Session, tenant_id: str, schedule_id: str) -> Schedule:
    schedule = session.get(Schedule, schedule_id)
    if schedule is None or schedule.tenant_id != tenant_id:
        raise NotFound(f"There is no schedule with id {schedule_id!r}.")
    return schedule


def list_schedules(session: Session, tenant_id: str, limit: int, offset: int) -> tuple[list[Schedule], int]:
    query = select(Schedule).where(Schedule.tenant_id == tenant_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Schedule.created_at.desc(), Schedule.id).limit(limit).offset(offset))
    return list(rows), total


def update_schedule(
    session: Session, settings: Settings, tenant_id: str, schedule_id: str, body: ScheduleUpdate, now: datetime
) -> Schedule:
    """Changes take effect from the next slot: a new cron, time zone or re-enabling recomputes it from now."""
    schedule = get_schedule(session, tenant_id, schedule_id)
    changes = body.model_dump(exclude_unset=True)
    if "job" in changes or "study" in changes:
        _validate_template(session, settings, tenant_id, body.job, body.study)
        changes["job_template"] = _template(body.job, body.study)
        changes.pop("job", None)
        changes.pop("study", None)
    cron, zone = changes.get("cron", schedule.cron), changes.get("timezone", schedule.timezone)
    upcoming = next_slot(cron, zone, now)
    for key, value in changes.items():
        setattr(schedule, key, value)
    if {"cron", "timezone", "enabled"} & changes.keys() or schedule.next_run_at is None:
        schedule.next_run_at = upcoming if schedule.enabled else None
    schedule.updated_at = now
    session.commit()
    return schedule


def delete_schedule(session: Session, tenant_id: str, schedule_id: str) -> None:
    """The schedule and its slot records go; the jobs it made stay, with their schedule_id."""
    session.delete(get_schedule(session, tenant_id, schedule_id))
    session.commit()


@dataclass(frozen=True)
class Due:
    id: str
    tenant_id: str
    next_run_at: datetime
    cron: str
    timezone: str
    job_template: dict[str, Any]
    overlap: str
    catch_up: str


@dataclass(frozen=True)
class Fired:
    schedule_id: str
    scheduled_for: datetime
    outcome: str
    job_id: str | None


def _claim(
    session: Session,
    settings: Settings,
    schedule: Due,
    slot: datetime,
    outcome: str | None,
    detail: str | None = None,
) -> Fired | None:
    """Records the slot and (when it starts) its job in one transaction; None if another scheduler
    already holds this slot."""
    if outcome is None:
        # The slot's record is committed with its job; the unique key on (schedule, slot) decides.
        def run(job: Job) -> list[ScheduleRun]:
            return [
                ScheduleRun(
                    schedule_id=schedule.id, scheduled_for=slot, outcome="started", job_id=job.id, detail=detail
                )
            ]

        try:
            job = start_from_template(
                session,
                settings,
                schedule.tenant_id,
                schedule.job_template,
                run,
                schedule_id=schedule.id,
                scheduled_for=slot,
            )
        except IntegrityError:
            return None
        except (DomainError, ValidationError) as exc:
            # The template was valid when saved; its dataset may have gone since, or the tenant is at its
            # limit. Say so on the slot.
            session.rollback()
            outcome, detail = "failed", getattr(exc, "detail", None) or str(exc)
        else:
            return Fired(schedule.id, slot, "started", job.id)
    session.add(ScheduleRun(schedule_id=schedule.id, scheduled_for=slot, outcome=outcome, detail=detail))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return None
    return Fired(schedule.id, slot, outcome, None)


def _has_active_run(session: Session, schedule_id: str) -> bool:
    active = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]
    query = select(func.count()).select_from(Job).where(Job.schedule_id == schedule_id, Job.status.in_(active))
    return bool(session.scalar(query))


def fire_due(session: Session, settings: Settings, now: datetime) -> list[Fired]:
    """Fires every slot due at `now`, once: safe to call as often as you like, from as many processes
    as you like.

    A slot that came due within ON_TIME_GRACE fires (or is skipped for overlap) and the next slot
    follows it. An older one means no scheduler ran for a while: the catch-up policy records one run
    for all the missed slots (a job with `run_once`, a `skipped_missed` record with `skip`), and the
    schedule resumes at the first slot that was not missed."""
    fired: list[Fired] = []
    due = [
        Due(s.id, s.tenant_id, s.next_run_at, s.cron, s.timezone, s.job_template, s.overlap, s.catch_up)
        for s in session.scalars(select(Schedule).where(Schedule.enabled.is_(True), Schedule.next_run_at <= now))
        if s.next_run_at is not None
    ]
    # End the read. What was read is a snapshot: reloading the rows later could see a slot another
    # scheduler has just advanced to, which is not due yet.
    session.rollback()
    for schedule in due:
        slot = schedule.next_run_at
        cron, zone = _cron(schedule.cron, schedule.timezone)
        outcome: str | None = None
        detail: str | None = None
        if slot >= now - ON_TIME_GRACE:
            upcoming = cron.next_after(slot, zone)
        else:
            upcoming = cron.next_after(now - ON_TIME_GRACE, zone)
            missed = f"the slots from {slot.isoformat()} until {upcoming.isoformat()} came while no scheduler ran"
            if schedule.catch_up == "run_once":
                detail = f"one run for all of them: {missed}"
            else:
                outcome, detail = "skipped_missed", missed
        if outcome is None and schedule.overlap == "skip" and _has_active_run(session, schedule.id):
            outcome, detail = "skipped_overlap", "the previous run was still queued or running"
        result = _claim(session, settings, schedule, slot, outcome, detail)
        if result is not None:
            fired.append(result)
        # Every scheduler computes the same next slot; the condition keeps a concurrent PATCH intact.
        session.execute(
            update(Schedule)
            .where(Schedule.id == schedule.id, Schedule.next_run_at == slot)
            .values(next_run_at=upcoming)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    return fired


def trigger(session: Session, settings: Settings, tenant_id: str, schedule_id: str, now: datetime) -> Job:
    """A run now, outside the calendar (overlap does not apply: it was asked for); the tenant's and the
    server's limits do."""
    schedule = get_schedule(session, tenant_id, schedule_id)

    def run(job: Job) -> list[ScheduleRun]:
        return [
            ScheduleRun(
                schedule_id=schedule.id,
                scheduled_for=now,
                outcome="started",
                job_id=job.id,
                detail="triggered by request",
            )
        ]

    try:
        return start_from_template(
            session, settings, tenant_id, schedule.job_template, run, schedule_id=schedule.id, scheduled_for=now
        )
    except IntegrityError:
        raise Conflict("This schedule was triggered at this same instant already; retry.") from None


def _headline(job: Job) -> tuple[str | None, float | None, float | None]:
    metric = "accuracy" if job.task == "classification" else "r2"
    validation = (job.result or {}).get("validation") or {}
    return metric, validation.get(metric), validation.get("data_loss")


def list_runs(
    session: Session, tenant_id: str, schedule_id: str, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    get_schedule(session, tenant_id, schedule_id)
    total = (
        session.scalar(select(func.count()).select_from(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id)) or 0
    )
    runs = list(
        session.scalars(
            select(ScheduleRun)
            .where(ScheduleRun.schedule_id == schedule_id)
            .order_by(ScheduleRun.scheduled_for.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    jobs = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_([r.job_id for r in runs if r.job_id])))}
    succeeded = list(
        session.scalars(
            select(Job)
            .where(Job.schedule_id == schedule_id, Job.status == JobStatus.SUCCEEDED.value)
            .order_by(Job.scheduled_for)
        )
    )
    previous_value: dict[str, float | None] = {}
    last: float | None = None
    for earlier in succeeded:
        previous_value[earlier.id] = last
        last = _headline(earlier)[1]
    items = []
    for run in runs:
        job = jobs.get(run.job_id or "")
        summary = None
        if job is not None:
            metric, value, loss = _headline(job)
            before = previous_value.get(job.id)
            summary = {
                "id": job.id,
                "status": job.status,
                "dataset": dataset_ref(job),
                "metric": metric,
                "value": value,
                "validation_data_loss": loss,
                "change": value - before if value is not None and before is not None else None,
            }
        items.append(
            {
                "scheduled_for": run.scheduled_for,
                "outcome": run.outcome,
                "detail": run.detail,
                "job": summary,
                "created_at": run.created_at,
            }
        )
    return items, total


def schedule_read(schedule: Schedule) -> dict[str, Any]:
    template = schedule.job_template
    study = template.get("study") if "study" in template else None
    return ScheduleRead(
        id=schedule.id,
        name=schedule.name,
        cron=schedule.cron,
        timezone=schedule.timezone,
        job=None if study is not None else template,
        study=study,
        enabled=schedule.enabled,
        overlap=schedule.overlap,
        catch_up=schedule.catch_up,
        next_run_at=schedule.next_run_at,
        created_at=schedule.created_at,
        updated_at=schedule.updated_at,
    ).model_dump()


def now() -> datetime:
    return utcnow()
