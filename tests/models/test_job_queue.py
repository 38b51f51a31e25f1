"""The fair claim on a real database (SQLite file and PostgreSQL): a message starts the fairest queued job
on its queue, so one tenant's backlog does not hold back another's next job; running limits hold, the GPU
queue's jobs stay on it, and concurrent claimers never take one job twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from core.celery_app import enqueue_job, get_celery, queue_depth
from core.db import get_session_factory
from core.queues import QUEUE_TRAIN, QUEUE_TRAIN_GPU
from core.settings import Settings
from models import Job, JobStatus, Tenant
from models.base import utcnow
from models.job_queue import claim_fair, publish_freed_slot, waiting_tenants
from scheduler.upkeep import run_upkeep
from tests.support.app import configure, release


@pytest.fixture
def settings(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    yield configure(tmp_path, monkeypatch, database_url, tenant_max_running_jobs="8")
    release()


def add_tenant(name: str, max_running_jobs: int | None = None) -> str:
    with get_session_factory()() as session:
        tenant = Tenant(name=name, max_running_jobs=max_running_jobs)
        session.add(tenant)
        session.commit()
        return tenant.id


def add_jobs(tenant_id: str, count: int, device: str = "cpu") -> list[str]:
    """Queued jobs, each created a millisecond after the last, as a client submitting one by one."""
    start = utcnow()
    jobs = [
        Job(
            tenant_id=tenant_id,
            spec={},
            task="classification",
            device=device,
            queue=QUEUE_TRAIN_GPU if device == "cuda" else QUEUE_TRAIN,
            dataset_ref="builtin:iris",
            dataset_id="builtin:iris",
            dataset_name="builtin:iris",
            dataset_version=1,
            dataset_sha256="0" * 64,
            progress_epochs=1,
            created_at=start + timedelta(milliseconds=i),
            enqueued_at=start,
        )
        for i in range(count)
    ]
    with get_session_factory()() as session:
        session.add_all(jobs)
        session.commit()
        return [job.id for job in jobs]


def claim(settings: Settings, job_id: str) -> Job | None:
    with get_session_factory()() as session:
        job = claim_fair(session, settings, job_id)
        session.commit()
        return job


def finish(job_id: str) -> None:
    with get_session_factory()() as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.SUCCEEDED.value))
        session.commit()


def statuses(job_ids: list[str]) -> list[str]:
    with get_session_factory()() as session:
        found = {row.id: row.status for row in session.execute(select(Job.id, Job.status).where(Job.id.in_(job_ids)))}
        return [found[job_id] for job_id in job_ids]


def test_a_backlog_does_not_hold_back_another_tenants_job(settings: Settings) -> None:
    backlog = add_jobs(add_tenant("a"), 50)
    (other,) = add_jobs(add_tenant("b"), 1)
    # The messages arrive in submission order: all of a's first. Each claimed job runs and ends
    # before the next message is taken, as with one worker.
    started = []
    for message in [*backlog, other][:2]:
        job = claim(settings, message)
        assert job is not None and job.status == JobStatus.RUNNING.value and job.attempts == 1
        started.append(job.id)
        finish(job.id)
    assert other in started
    # Then a's jobs, oldest first.
    for message in backlog[2:5]:
        job = claim(settings, message)
        assert job is not None
        started.append(job.id)
        finish(job.id)
    assert [job_id for job_id in started if job_id != other] == backlog[:4]


def test_tenants_take_turns_and_the_served_tenant_is_stamped(settings: Settings) -> None:
    a, b = add_tenant("a"), add_tenant("b")
    messages = add_jobs(a, 3) + add_jobs(b, 3)
    order = []
    for message in messages:
        job = claim(settings, message)
        assert job is not None
        order.append(job.tenant_id)
        finish(job.id)
    assert order == [a, b, a, b, a, b]
    with get_session_factory()() as session:
        served = {row.id: row.served_at for row in session.execute(select(Tenant.id, Tenant.served_at))}
    assert served[a] is not None and served[b] is not None and served[a] < served[b]


def test_a_tenants_jobs_start_in_submission_order_whichever_message_starts_them(settings: Settings) -> None:
    jobs = add_jobs(add_tenant("a"), 5)
    job = claim(settings, jobs[3])
    assert job is not None and job.id == jobs[0]
    assert statuses(jobs) == ["running", "queued", "queued", "queued", "queued"]
    # A message naming a job that is no longer queued (a duplicate, or a finished job's) is a token too.
    job = claim(settings, jobs[0])
    assert job is not None and job.id == jobs[1]


def test_a_tenant_at_its_running_limit_waits_and_others_go_ahead(settings: Settings) -> None:
    limited = add_tenant("a", max_running_jobs=2)
    a_jobs = add_jobs(limited, 5)
    for message in a_jobs[:2]:
        assert claim(settings, message) is not None  # a's two slots, left running
    b_jobs = add_jobs(add_tenant("b", max_running_jobs=1), 3)
    # a's own messages now start b's job, while b has a slot.
    job = claim(settings, a_jobs[2])
    assert job is not None and job.id == b_jobs[0]
    # Nothing may start now: a and b are both at their limits. The message does nothing.
    assert claim(settings, a_jobs[3]) is None
    assert statuses(a_jobs) == ["running", "running", "queued", "queued", "queued"]
    assert statuses(b_jobs) == ["running", "queued", "queued"]
    # One of a's jobs ends: its slot goes to a's oldest queued job.
    finish(a_jobs[0])
    job = claim(settings, b_jobs[1])
    assert job is not None and job.id == a_jobs[2]


def test_the_server_default_limit_applies_to_a_tenant_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    settings = configure(tmp_path, monkeypatch, database_url, tenant_max_running_jobs="1")
    try:
        jobs = add_jobs(add_tenant("a"), 2)
        assert claim(settings, jobs[0]) is not None
        assert claim(settings, jobs[1]) is None
        assert statuses(jobs) == ["running", "queued"]
    finally:
        release()


def test_gpu_queue_jobs_are_never_claimed_from_the_cpu_queue(settings: Settings) -> None:
    tenant = add_tenant("a")
    gpu_jobs = add_jobs(tenant, 3, device="cuda")
    (cpu_job,) = add_jobs(add_tenant("b"), 1)
    job = claim(settings, cpu_job)
    assert job is not None and job.id == cpu_job
    finish(cpu_job)
    # A CPU-queue message, with only GPU jobs queued, starts nothing.
    assert claim(settings, cpu_job) is None
    assert statuses(gpu_jobs) == ["queued"] * 3
    # A GPU-queue message starts a GPU job, never the CPU queue's.
    (later_cpu_job,) = add_jobs(tenant, 1)
    job = claim(settings, gpu_jobs[2])
    assert job is not None and job.queue == QUEUE_TRAIN_GPU and job.id == gpu_jobs[0]
    assert statuses([later_cpu_job]) == ["queued"]


def test_racing_claimers_never_claim_one_job_twice(settings: Settings) -> None:
    a, b = add_tenant("a", max_running_jobs=3), add_tenant("b", max_running_jobs=3)
    jobs = add_jobs(a, 10) + add_jobs(b, 10)
    claimed: list[str] = []
    nothing: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def claimer(messages: list[str]) -> None:
        barrier.wait()
        for message in messages:
            job = claim(settings, message)
            with lock:
                if job is None:
                    nothing.append(1)
                else:
                    claimed.append(job.id)

    threads = [threading.Thread(target=claimer, args=(jobs[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Twenty messages for twenty jobs, at most three running per tenant: six start, each once.
    assert len(claimed) == len(set(claimed)) == 6
    assert len(nothing) == 14
    with get_session_factory()() as session:
        query = select(Job.tenant_id, func.count()).where(Job.status == "running").group_by(Job.tenant_id)
        running = {tenant_id: count for tenant_id, count in session.execute(query)}
        attempts = set(session.scalars(select(Job.attempts).where(Job.status == "running")))
    assert running == {a: 3, b: 3} and attempts == {1}


def test_many_queued_jobs_are_ordered_with_a_few_grouped_queries(settings: Settings) -> None:
    a, b = add_tenant("a"), add_tenant("b")
    add_jobs(a, 1000)
    add_jobs(b, 1)
    with get_session_factory()() as session:
        waiting = waiting_tenants(session, settings, QUEUE_TRAIN)
    assert [(w.tenant_id, w.queued, w.running) for w in waiting] == [(a, 1000, 0), (b, 1, 0)]
    assert all(w.oldest_queued_at.tzinfo is not None for w in waiting)


def purge(queue: str) -> None:
    with get_celery().connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)


def test_a_freed_slot_is_passed_on_when_the_queue_lacks_messages(settings: Settings) -> None:
    limited = add_tenant("a", max_running_jobs=1)
    jobs = add_jobs(limited, 3)
    for job_id in jobs:
        enqueue_job(job_id, QUEUE_TRAIN)
    purge(QUEUE_TRAIN)  # as if the first message started jobs[0] and the other two found a at its limit
    assert claim(settings, jobs[0]) is not None
    with get_session_factory()() as session:
        assert publish_freed_slot(session, settings, limited) == [], "a is at its limit: nothing may start"
    finish(jobs[0])
    with get_session_factory()() as session:
        assert publish_freed_slot(session, settings, limited) == [QUEUE_TRAIN]
        assert queue_depth(QUEUE_TRAIN) == 1
        # The message now waiting is enough for the one job that may start: no second one.
        assert publish_freed_slot(session, settings, limited) == []
    assert queue_depth(QUEUE_TRAIN) == 1
    job = claim(settings, jobs[0])  # the message names any of a's jobs; it starts the oldest queued
    assert job is not None and job.id == jobs[1]


def test_the_sweeper_resends_only_for_jobs_that_may_start(settings: Settings) -> None:
    limited, other = add_tenant("a", max_running_jobs=2), add_tenant("b")
    a_jobs, b_jobs = add_jobs(limited, 5), add_jobs(other, 2)
    assert claim(settings, a_jobs[0]) is not None  # a has one of its two slots left
    long_ago = utcnow() - timedelta(seconds=settings.sweep_after_seconds + 1)
    with get_session_factory()() as session:
        session.execute(update(Job).values(enqueued_at=long_ago))
        session.commit()
        resent = run_upkeep(session, settings, utcnow()).resent
    # The queue is empty: b's two jobs and one of a's (its free slot), a's oldest queued first.
    assert sorted(resent) == sorted([a_jobs[1], *b_jobs])
    assert queue_depth(QUEUE_TRAIN) == 3
