"""One tenant's backlog does not hold back another tenant's next job, with a real worker process: tenant A
queues 200 jobs, then tenant B queues one, and B's job starts next (at most about one job's time later),
not after A's backlog. On the embedded stack and the distributed one.

The jobs are written to the database and published the way create_job does (commit, then
core.celery_app.enqueue_job), from this process configured as the stack is: the tenants are made here,
so that the test does not depend on the admin API for tenants and keys."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from api.schemas.job import JobCreate
from api.services.jobs import build_job
from core.celery_app import enqueue_job
from core.db import get_session_factory
from core.settings import Settings
from models import Job, Tenant
from models.base import utcnow
from tests.support.app import configure, release
from tests.support.servers import wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

TINY = {"dataset": "builtin:iris", "model": {"type": "linear"}, "training": {"epochs": 1}}
BACKLOG = 200


@pytest.fixture
def deployment(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """This process, pointed at the stack's database and broker."""
    broker_url = stack.env.get("REGTRAIN_BROKER_URL")
    yield configure(
        stack.home,
        monkeypatch,
        stack.env.get("REGTRAIN_DATABASE_URL"),
        **({"broker_url": broker_url} if broker_url else {}),
    )
    release()


def queue_jobs(settings: Settings, tenant_name: str, count: int) -> list[str]:
    with get_session_factory()() as session:
        tenant = Tenant(name=tenant_name)
        session.add(tenant)
        session.flush()
        start = utcnow()
        jobs = [build_job(session, settings, tenant.id, JobCreate.model_validate(TINY)) for _ in range(count)]
        for i, job in enumerate(jobs):
            job.created_at = start + timedelta(microseconds=i)
        session.add_all(jobs)
        session.commit()
    for job in jobs:
        assert enqueue_job(job.id, job.queue)
    return [job.id for job in jobs]


def started(job_ids: list[str]) -> list[Job]:
    with get_session_factory()() as session:
        jobs = session.scalars(select(Job).where(Job.id.in_(job_ids), Job.started_at.is_not(None)))
        return sorted(jobs, key=lambda job: job.started_at or job.created_at)


def test_a_backlog_does_not_hold_back_another_tenants_next_job(stack: Stack, deployment: Settings) -> None:
    backlog = queue_jobs(deployment, "tenant-a", BACKLOG)
    # The worker is busy with the backlog before the other tenant's job arrives.
    wait_until(lambda: len(started(backlog)) >= 2, timeout=60, what="the backlog to start")
    (other,) = queue_jobs(deployment, "tenant-b", 1)
    try:
        (other_job,) = wait_until(lambda: started([other]), timeout=30, what="the other tenant's job to start")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from exc
    submitted_at, other_started_at = other_job.created_at, other_job.started_at
    assert other_started_at is not None

    backlog_started = started(backlog)
    ahead = [job for job in backlog_started if submitted_at < (job.started_at or submitted_at) < other_started_at]
    durations = [
        (job.finished_at - job.started_at).total_seconds()
        for job in backlog_started
        if job.finished_at is not None and job.started_at is not None
    ]
    # One worker, one job at a time: the backlog's running job finishes, then the other tenant's starts.
    # Two allow for a job that began as the other was submitted; FIFO would have run ~200 first.
    assert len(ahead) <= 2, (len(ahead), len(backlog_started))
    assert len(backlog_started) < BACKLOG / 2
    wait = (other_started_at - submitted_at).total_seconds()
    median = statistics.median(durations) if durations else float("nan")
    print(f"waited {wait:.3f} s; median job {median:.3f} s; {len(ahead)} backlog jobs ahead")
