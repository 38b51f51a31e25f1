"""The job lifecycle: only allowed transitions happen, terminal states absorb, a stale attempt cannot
write, and concurrent movers never both win. On SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC

import pytest
from sqlalchemy.orm import Session, sessionmaker

from models import ALLOWED_TRANSITIONS, TERMINAL_STATUSES, Job, JobStatus, transition, update_running
from models.job_state import IllegalTransition
from tests.support.app import default_tenant_id


def add_job(factory: sessionmaker[Session]) -> str:
    with factory() as session:
        job = Job(
            tenant_id=default_tenant_id(session),
            spec={},
            task="classification",
            device="cpu",
            queue="q",
            dataset_ref="builtin:iris",
            dataset_id="builtin:iris",
            dataset_name="builtin:iris",
            dataset_version=1,
            dataset_sha256="0" * 64,
            progress_epochs=3,
        )
        session.add(job)
        session.commit()
        return job.id


def status_of(factory: sessionmaker[Session], job_id: str) -> Job:
    with factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def move(factory: sessionmaker[Session], job_id: str, to: JobStatus, **kwargs: object) -> Job | None:
    with factory() as session:
        row = transition(session, job_id, to, **kwargs)  # type: ignore[arg-type]
        session.commit()
        return row


def test_claim_counts_an_attempt_and_stamps_times(session_factory: sessionmaker[Session]) -> None:
    job_id = add_job(session_factory)
    claimed = move(session_factory, job_id, JobStatus.RUNNING)
    assert claimed is not None and claimed.attempts == 1 and claimed.status == "running"
    job = status_of(session_factory, job_id)
    assert job.started_at is not None and job.started_at.tzinfo == UTC
    assert job.created_at.tzinfo == UTC and job.finished_at is None
    done = move(session_factory, job_id, JobStatus.SUCCEEDED, attempt=1, result={"epochs_run": 3})
    assert done is not None
    job = status_of(session_factory, job_id)
    assert job.status == "succeeded" and job.result == {"epochs_run": 3}
    assert job.finished_at is not None and job.finished_at >= job.started_at


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_terminal_states_absorb(session_factory: sessionmaker[Session], terminal: JobStatus) -> None:
    job_id = add_job(session_factory)
    if terminal is not JobStatus.CANCELED:
        assert move(session_factory, job_id, JobStatus.RUNNING) is not None
    assert move(session_factory, job_id, terminal) is not None
    before = status_of(session_factory, job_id)
    for target in JobStatus:
        assert move(session_factory, job_id, target) is None
    after = status_of(session_factory, job_id)
    assert (after.status, after.attempts, after.finished_at) == (before.status, before.attempts, before.finished_at)


def test_the_table_is_the_lifecycle() -> None:
    assert ALLOWED_TRANSITIONS[JobStatus.QUEUED] == {JobStatus.RUNNING, JobStatus.CANCELED}
    # Back to queued: a worker shutting down hands its job back, or a dead worker's lease runs out.
    assert ALLOWED_TRANSITIONS[JobStatus.RUNNING] == {
        JobStatus.QUEUED,
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.CANCELED,
    }
    assert all(not ALLOWED_TRANSITIONS[status] for status in TERMINAL_STATUSES)


def test_a_queued_job_cannot_succeed_without_running(session_factory: sessionmaker[Session]) -> None:
    job_id = add_job(session_factory)
    assert move(session_factory, job_id, JobStatus.SUCCEEDED) is None
    assert status_of(session_factory, job_id).status == "queued"
    with pytest.raises(IllegalTransition):
        move(session_factory, job_id, JobStatus.SUCCEEDED, source=JobStatus.QUEUED)


def test_a_stale_attempt_is_fenced_off(session_factory: sessionmaker[Session]) -> None:
    job_id = add_job(session_factory)
    move(session_factory, job_id, JobStatus.RUNNING)
    with session_factory() as session:
        assert update_running(session, job_id, attempt=2, progress_epoch=1) is False
        assert update_running(session, job_id, attempt=1, progress_epoch=1) is True
        session.commit()
    assert move(session_factory, job_id, JobStatus.SUCCEEDED, attempt=2) is None
    assert move(session_factory, job_id, JobStatus.CANCELED) is not None
    with session_factory() as session:
        # Canceled while "running": the attempt that still trains learns it no longer owns the job.
        assert update_running(session, job_id, attempt=1, progress_epoch=2) is False
    assert status_of(session_factory, job_id).progress_epoch == 1


def race(factory: sessionmaker[Session], job_id: str, moves: list[tuple[JobStatus, dict[str, object]]]) -> list[bool]:
    barrier = threading.Barrier(len(moves))
    outcomes: list[bool] = [False] * len(moves)

    def run(index: int, to: JobStatus, kwargs: dict[str, object]) -> None:
        barrier.wait()
        outcomes[index] = move(factory, job_id, to, **kwargs) is not None

    threads = [threading.Thread(target=run, args=(i, to, kw)) for i, (to, kw) in enumerate(moves)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_claims_have_exactly_one_winner(session_factory: sessionmaker[Session]) -> None:
    for _ in range(10):
        job_id = add_job(session_factory)
        outcomes = race(session_factory, job_id, [(JobStatus.RUNNING, {})] * 4)
        assert sum(outcomes) == 1
        assert status_of(session_factory, job_id).attempts == 1


def test_cancel_racing_success_leaves_one_consistent_outcome(session_factory: sessionmaker[Session]) -> None:
    for _ in range(10):
        job_id = add_job(session_factory)
        move(session_factory, job_id, JobStatus.RUNNING)
        outcomes = race(
            session_factory,
            job_id,
            [(JobStatus.CANCELED, {}), (JobStatus.SUCCEEDED, {"attempt": 1, "result": {"ok": 1}})],
        )
        assert sum(outcomes) == 1
        job = status_of(session_factory, job_id)
        assert job.status == ("canceled" if outcomes[0] else "succeeded")
        # Results exist only for succeeded jobs.
        assert (job.result is not None) == (job.status == "succeeded")
