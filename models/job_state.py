"""The job lifecycle. Every status change goes through `transition`, a conditional UPDATE that only
succeeds from an allowed source status, so there is no lost update and no resurrection of a
terminal job, whichever process gets there first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.event import JobEvent
from models.job import Job
from models.job_status import JobStatus

__all__ = [
    "ALLOWED_TRANSITIONS",
    "TERMINAL_STATUSES",
    "IllegalTransition",
    "JobStatus",
    "record_event",
    "record_events",
    "record_partial_artifact",
    "status_event",
    "transition",
    "update_running",
]


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELED}),
    # running -> queued: the attempt's worker shut down (it hands the job back) or died (its lease ran out).
    JobStatus.RUNNING: frozenset({JobStatus.QUEUED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}


class IllegalTransition(ValueError):
    pass


def transition(
    session: Session,
    job_id: str,
    to: JobStatus,
    *,
    source: JobStatus | None = None,
    attempt: int | None = None,
    **values: Any,
) -> Job | None:
    """Move a job to `to` if its current status allows it (and, when given, it is in `source` and
    its current attempt is `attempt`). Returns the updated row, or None when the job was not in a
    state that allows the move: the caller lost the race and must not act as if it had won.
    Entering `running` counts a new attempt; entering a terminal status stamps finished_at. The change
    is recorded as a status event in the same transaction."""
    sources = [status for status, targets in ALLOWED_TRANSITIONS.items() if to in targets]
    if source is not None:
        if source not in sources:
            raise IllegalTransition(f"a job never moves from {source} to {to}")
        sources = [source]
    now = utcnow()
    changes: dict[str, Any] = {"status": to.value, **values}
    if to is JobStatus.RUNNING:
        changes.update(attempts=Job.attempts + 1, started_at=now, heartbeat_at=now)
    if to in TERMINAL_STATUSES:
        changes["finished_at"] = now
    statement = update(Job).where(Job.id == job_id, Job.status.in_([s.value for s in sources]))
    if attempt is not None:
        statement = statement.where(Job.attempts == attempt)
    row = session.execute(
        # populate_existing: a Job already in the session gets the updated columns (status, attempts), so the
        # caller and the status event see the row as it now is.
        statement.values(**changes).returning(Job).execution_options(synchronize_session=False, populate_existing=True)
    ).scalar_one_or_none()
    if row is not None:
        record_event(session, job_id, "status", status_event(row))
    return row


def status_event(job: Job) -> dict[str, Any]:
    """What a status event tells: the status, the attempt, when, and the error of a failed job."""
    error = {"type": job.error_type, "message": job.error_message or ""} if job.error_type else None
    return {"status": JobStatus(job.status).value, "attempt": job.attempts, "at": utcnow().isoformat(), "error": error}


# A Core insert compiled once: one is written per epoch of every job.
EVENT_INSERT = JobEvent.metadata.tables[JobEvent.__tablename__].insert()


def record_event(session: Session, job_id: str, kind: str, data: dict[str, Any]) -> None:
    """Adds an event to a job's stream, inside the caller's transaction."""
    record_events(session, job_id, kind, [data])


def record_events(session: Session, job_id: str, kind: str, data: list[dict[str, Any]]) -> None:
    """Adds events of one kind to a job's stream in their order, in one statement of the caller's transaction."""
    now = utcnow()
    rows = [{"job_id": job_id, "kind": kind, "data": item, "created_at": now} for item in data]
    session.execute(EVENT_INSERT, rows[0] if len(rows) == 1 else rows)


def update_running(session: Session, job_id: str, attempt: int, **values: Any) -> bool:
    """Write to a running job only while `attempt` still owns it (fencing): False means the job was
    canceled, finished, or taken over, and the caller must stop."""
    # A Core update (no ORM bookkeeping): it runs at every epoch and heartbeat of every job.
    job = Job.metadata.tables[Job.__tablename__]
    statement = (
        job.update()
        .where(job.c.id == job_id, job.c.status == JobStatus.RUNNING.value, job.c.attempts == attempt)
        .values(**values)
    )
    return session.execute(statement).rowcount == 1  # type: ignore[attr-defined]


def record_partial_artifact(session: Session, job_id: str, attempt: int, artifact_key: str, epoch: int) -> bool:
    """Give a job that ended without success (canceled, or failed) the weights its attempt `attempt`
    kept. Not a status change: allowed only while the job is terminal, still at that attempt, and has
    no artifact, so a job taken over, requeued or already holding weights is never written to."""
    statement = (
        update(Job)
        .where(
            Job.id == job_id,
            Job.status.in_([JobStatus.FAILED.value, JobStatus.CANCELED.value]),
            Job.attempts == attempt,
            Job.artifact_key.is_(None),
        )
        .values(artifact_key=artifact_key, artifact_epoch=epoch, artifact_partial=True)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount == 1  # type: ignore[attr-defined]
