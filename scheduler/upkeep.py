"""Keeping jobs moving when parts of the system fail, run by the scheduler process on every tick:

- reap: a running attempt whose heartbeat is older than REGTRAIN_LEASE_SECONDS is presumed dead (its
  worker was killed, or died before its first heartbeat). Its job goes back to the queue, to resume
  from its last checkpoint, or fails with `worker_lost` once REGTRAIN_MAX_ATTEMPTS attempts have died.
- sweep: a queued job whose message is gone (the broker lost it, or a publish failed) is sent again.
  When a queue holds no messages, every job queued on it for longer than REGTRAIN_SWEEP_AFTER_SECONDS
  has lost its message, or its tenant is at its running limit (models.job_queue: a message that finds
  every waiting tenant at its limit starts nothing, and the end of one of their jobs sends one). So
  messages are re-sent only for jobs that could start now, up to each tenant's free running slots: a
  tenant held at its limit must not fill the queue with messages that start nothing, ahead of other
  tenants' jobs. Re-sending is safe, since a job is only ever claimed once per attempt.
- expire idempotency keys older than REGTRAIN_IDEMPOTENCY_TTL_SECONDS."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from core.celery_app import enqueue_job, queue_depth
from core.settings import Settings
from models import IdempotencyKey, Job, JobStatus, transition
from models.job_queue import publish_freed_slot, waiting_tenants

log = logging.getLogger(__name__)


@dataclass
class Upkeep:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)


def reap(session: Session, settings: Settings, now: datetime, upkeep: Upkeep) -> None:
    stale = now - timedelta(seconds=settings.lease_seconds)
    dead = [
        (job.id, job.attempts, job.requeues)
        for job in session.scalars(select(Job).where(Job.status == JobStatus.RUNNING.value, Job.heartbeat_at < stale))
    ]
    session.rollback()
    for job_id, attempt, requeues in dead:
        if attempt - requeues >= settings.max_attempts:
            moved = transition(
                session,
                job_id,
                JobStatus.FAILED,
                source=JobStatus.RUNNING,
                attempt=attempt,
                error_type="worker_lost",
                error_message=f"The worker running this job stopped answering {attempt - requeues} "
                f"times (REGTRAIN_MAX_ATTEMPTS is {settings.max_attempts}). Its metrics and last "
                "checkpoint are kept.",
            )
            session.commit()
            if moved is not None:
                upkeep.failed.append(job_id)
                # Its tenant's running slot is free, as when a worker ends a job itself.
                publish_freed_slot(session, settings, moved.tenant_id)
            continue
        # The attempt fence: if the attempt heartbeats again before this commits, nothing changes.
        moved = transition(
            session,
            job_id,
            JobStatus.QUEUED,
            source=JobStatus.RUNNING,
            attempt=attempt,
            enqueued_at=now,
            heartbeat_at=None,
        )
        session.commit()
        if moved is not None:
            enqueue_job(job_id, moved.queue)
            upkeep.requeued.append(job_id)


def sweep(session: Session, settings: Settings, now: datetime, upkeep: Upkeep) -> None:
    waited = now - timedelta(seconds=settings.sweep_after_seconds)
    waiting = list(
        session.execute(
            select(Job.id, Job.queue, Job.tenant_id)
            .where(Job.status == JobStatus.QUEUED.value, Job.enqueued_at < waited)
            .order_by(Job.created_at, Job.id)
        )
    )
    session.rollback()
    for queue in sorted({row.queue for row in waiting}):
        if queue_depth(queue) > 0:
            continue  # workers are busy and messages are waiting: nothing is lost
        free_slots = {tenant.tenant_id: tenant.free_slots for tenant in waiting_tenants(session, settings, queue)}
        session.rollback()
        for row in (r for r in waiting if r.queue == queue):
            if free_slots.get(row.tenant_id, 0) <= 0:
                continue  # its tenant is at its running limit: the end of a running job sends the message
            free_slots[row.tenant_id] -= 1
            session.execute(
                update(Job)
                .where(Job.id == row.id, Job.status == JobStatus.QUEUED.value)
                .values(enqueued_at=now)
                .execution_options(synchronize_session=False)
            )
            session.commit()
            enqueue_job(row.id, queue)
            upkeep.resent.append(row.id)


def expire_keys(session: Session, settings: Settings, now: datetime) -> None:
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.created_at < now - timedelta(seconds=settings.idempotency_ttl_seconds)
        )
    )
    session.commit()


def run_upkeep(session: Session, settings: Settings, now: datetime) -> Upkeep:
    upkeep = Upkeep()
    reap(session, settings, now, upkeep)
    sweep(session, settings, now, upkeep)
    expire_keys(session, settings, now)
    for what, ids in (
        ("requeued (lease expired)", upkeep.requeued),
        ("failed (worker_lost)", upkeep.failed),
        ("re-sent (message lost)", upkeep.resent),
    ):
        for job_id in ids:
            log.info("job %s %s", job_id, what)
    return upkeep
