"""Schedules: CRUD, their runs, and firing due slots. Time is a parameter (`now`) so that the firing
rules can be tested on any calendar without waiting.

Firing a slot inserts its schedule_run row and its job in one transaction; the unique key on
(schedule_id, scheduled_for) lets exactly one scheduler win a slot, however many race for it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.schemas.job import JobCreate
from api.schemas.schedule import ScheduleCreate, ScheduleUpdate
from api.services.jobs import build_job, create_job, dataset_ref, get_job, job_read
from core.celery_app import enqueue_job
from core.cron import Cron, CronError, timezone
from core.errors import DomainError, InvalidInput, NotFound
from core.settings import Settings
from models import Job, JobStatus, Schedule, ScheduleRun
from models.base import utcnow

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


def _validate_template(session: Session, settings: Settings, template: JobCreate) -> None:
    """Exactly the checks of POST /v1/jobs, without creating anything."""
    build_job(session, settings, template)


def create_schedule(session: Session, settings: Settings, body: ScheduleCreate, now: datetime) -> Schedule:
    first = next_slot(body.cron, body.timezone, now)
    _validate_template(session, settings, body.job)
    schedule = Schedule(
        name=body.name,
        cron=body.cron,
        timezone=body.timezone,
        job_template=body.job.model_dump(mode="json", exclude_unset=True),
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


def get_schedule(session: Session, schedule_id: str) -> Schedule:
    schedule = session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFound(f"There is no schedule with id {schedule_id!r}.")
    return schedule


def list_schedules(session: Session, limit: int, offset: int) -> tuple[list[Schedule], int]:
    total = session.scalar(select(func.count()).select_from(Schedule)) or 0
    rows = session.scalars(select(Schedule).order_by(Schedule.created_at.desc()).limit(limit).offset(offset))
    return list(rows), total


def update_schedule(
    session: Session, settings: Settings, schedule_id: str, body: ScheduleUpdate, now: datetime
) -> Schedule:
    """Changes take effect from the next slot: a new cron, time zone or re-enabling recomputes it from now."""
    schedule = get_schedule(session, schedule_id)
    changes = body.model_dump(exclude_unset=True)
    if "job" in changes:
        assert body.job is not None
        _validate_template(session, settings, body.job)
        changes["job_template"] = body.job.model_dump(mode="json", exclude_unset=True)
        del changes["job"]
    cron, zone = changes.get("cron", schedule.cron), changes.get("timezone", schedule.timezone)
    upcoming = next_slot(cron, zone, now)
    for key, value in changes.items():
        setattr(schedule, key, value)
    if {"cron", "timezone", "enabled"} & changes.keys() or schedule.next_run_at is None:
        schedule.next_run_at = upcoming if schedule.enabled else None
    schedule.updated_at = now
    session.commit()
    return schedule


def delete_schedule(session: Session, schedule_id: str) -> None:
    """The schedule and its slot records go; the jobs it made stay, with their schedule_id."""
    session.delete(get_schedule(session, schedule_id))
    session.commit()


@dataclass(frozen=True)
class Due:
    id: str
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
    job = None
    if outcome is None:
        try:
            job = build_job(
                session,
                settings,
                JobCreate.model_validate(schedule.job_template),
                schedule_id=schedule.id,
                scheduled_for=slot,
            )
            outcome = "started"
        except (DomainError, ValidationError) as exc:
            # The template was valid when saved; its dataset may have gone since. Say so on the slot.
            outcome, detail = "failed", getattr(exc, "detail", None) or str(exc)
    session.add(
        ScheduleRun(
            schedule_id=schedule.id, scheduled_for=slot, outcome=outcome, job_id=job.id if job else None, detail=detail
        )
    )
    if job is not None:
        session.add(job)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return None
    if job is not None:
        enqueue_job(job.id, job.queue)
    return Fired(schedule.id, slot, outcome, job.id if job else None)


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
        Due(s.id, s.next_run_at, s.cron, s.timezone, s.job_template, s.overlap, s.catch_up)
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


def trigger(session: Session, settings: Settings, schedule_id: str, now: datetime) -> Job:
    """A run now, outside the calendar (overlap does not apply: it was asked for)."""
    schedule = get_schedule(session, schedule_id)
    template = JobCreate.model_validate(schedule.job_template)
    job = build_job(session, settings, template, schedule_id=schedule.id, scheduled_for=now)
    session.add(
        ScheduleRun(
            schedule_id=schedule.id, scheduled_for=now, outcome="started", job_id=job.id, detail="triggered by request"
        )
    )
    session.add(job)
    session.commit()
    enqueue_job(job.id, job.queue)
    return job


def _headline(job: Job) -> tuple[str | None, float | None, float | None]:
    metric = "accuracy" if job.task == "classification" else "r2"
    validation = (job.result or {}).get("validation") or {}
    return metric, validation.get(metric), validation.get("data_loss")


def list_runs(session: Session, schedule_id: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    get_schedule(session, schedule_id)
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


def retrain(session: Session, settings: Settings, job_id: str) -> dict[str, Any]:
    """The same spec on the newest version of the same dataset name."""
    parent = get_job(session, job_id)
    spec = dict(parent.spec)
    if not parent.dataset_id.startswith("builtin:"):
        spec["dataset"] = f"{parent.dataset_name}@latest"
    job = create_job(session, settings, JobCreate.model_validate(spec), parent_id=parent.id)
    changes = {}
    if job.dataset_version != parent.dataset_version or job.dataset_sha256 != parent.dataset_sha256:
        changes["dataset"] = {
            "from": {"version": parent.dataset_version, "sha256": parent.dataset_sha256},
            "to": {"version": job.dataset_version, "sha256": job.dataset_sha256},
        }
    return {"job": job_read(job), "changes": changes}


def schedule_read(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": schedule.id,
        "name": schedule.name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "job": schedule.job_template,
        "enabled": schedule.enabled,
        "overlap": schedule.overlap,
        "catch_up": schedule.catch_up,
        "next_run_at": schedule.next_run_at,
        "created_at": schedule.created_at,
        "updated_at": schedule.updated_at,
    }


def now() -> datetime:
    return utcnow()
