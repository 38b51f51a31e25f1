"""Idempotency keys, submission limits, and the upkeep that keeps jobs moving (reaping dead attempts,
re-sending lost messages), with time as a parameter. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.schemas.job import JobCreate
from api.services import jobs
from core.celery_app import get_celery, queue_depth
from core.db import get_session_factory
from core.queues import QUEUE_TRAIN
from core.settings import get_settings
from models import IdempotencyKey, Job, JobStatus, transition
from models.base import utcnow
from scheduler.upkeep import run_upkeep
from tests.support.app import default_tenant_id
from tests.support.files import csv_bytes, iris_like

JOB = {"dataset": "builtin:iris", "training": {"epochs": 1}}


def count_jobs() -> int:
    with get_session_factory()() as session:
        return len(list(session.scalars(select(Job))))


def test_a_repeat_with_the_same_key_returns_the_first_job(api_client: TestClient) -> None:
    first = api_client.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "order-42"})
    again = api_client.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "order-42"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert count_jobs() == 1
    other = api_client.post("/v1/jobs", json={**JOB, "name": "another"}, headers={"Idempotency-Key": "order-42"})
    assert other.status_code == 422 and "different request body" in other.json()["detail"]
    assert (
        api_client.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "order-43"}).json()["id"]
        != first.json()["id"]
    )
    assert count_jobs() == 2


def test_a_failed_request_does_not_hold_its_key(api_client: TestClient) -> None:
    bad = api_client.post("/v1/jobs", json={"dataset": "builtin:nope"}, headers={"Idempotency-Key": "k"})
    assert bad.status_code == 422
    good = api_client.post("/v1/jobs", json={"dataset": "builtin:nope"}, headers={"Idempotency-Key": "k"})
    assert good.status_code == 422, "the same body fails the same way; nothing was stored under the key"
    assert api_client.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "k"}).status_code == 201


def test_concurrent_repeats_make_one_job(api_client: TestClient) -> None:
    body = JobCreate.model_validate(JOB)
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(6)

    def repeat() -> None:
        barrier.wait()
        with get_session_factory()() as session:
            results.append(jobs.submit(session, get_settings(), default_tenant_id(session), body, "same-key"))

    threads = [threading.Thread(target=repeat) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6 and len({r["id"] for r in results}) == 1
    assert count_jobs() == 1


def test_keys_expire_after_a_day(api_client: TestClient) -> None:
    first = api_client.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "daily"}).json()
    with get_session_factory()() as session:
        session.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=25)))
        session.commit()
    second = api_client.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "daily"}).json()
    assert second["id"] != first["id"]


def test_dataset_uploads_are_idempotent_too(api_client: TestClient) -> None:
    header, rows = iris_like()
    files = {"file": ("f.csv", csv_bytes(header, rows))}
    first = api_client.post("/v1/datasets", data={"name": "flowers"}, files=files, headers={"Idempotency-Key": "u1"})
    again = api_client.post("/v1/datasets", data={"name": "flowers"}, files=files, headers={"Idempotency-Key": "u1"})
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert api_client.get("/v1/datasets").json()["total"] == 1
    changed = api_client.post(
        "/v1/datasets",
        data={"name": "flowers"},
        headers={"Idempotency-Key": "u1"},
        files={"file": ("f.csv", csv_bytes(header, rows[:30]))},
    )
    assert changed.status_code == 422


def test_submission_limits(api_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGTRAIN_MAX_PARAMETERS", "1000")
    monkeypatch.setenv("REGTRAIN_MAX_CELLS", "1000")
    monkeypatch.setenv("REGTRAIN_MAX_QUEUED_JOBS", "2")
    get_settings.cache_clear()
    wide = api_client.post("/v1/jobs", json={"dataset": "builtin:iris", "model": {"hidden_layers": [512]}})
    assert wide.status_code == 422 and "above this server's limit of 1,000" in wide.json()["detail"]
    big = api_client.post("/v1/jobs", json={"dataset": "builtin:wine", "model": {"type": "linear"}})
    assert big.status_code == 422 and "178 rows x 13 features" in big.json()["detail"]
    small = {"dataset": "builtin:iris", "model": {"type": "linear"}}
    assert api_client.post("/v1/jobs", json=small).status_code == 201
    assert api_client.post("/v1/jobs", json=small).status_code == 201
    full = api_client.post("/v1/jobs", json=small)
    assert full.status_code == 429 and full.headers["Retry-After"] == "30"
    assert "2 jobs are already queued" in full.json()["detail"]


def claim(job_id: str) -> int:
    with get_session_factory()() as session:
        job = transition(session, job_id, JobStatus.RUNNING)
        session.commit()
        assert job is not None
        return job.attempts


def age(job_id: str, **seconds_ago: float) -> None:
    with get_session_factory()() as session:
        values = {name: utcnow() - timedelta(seconds=s) for name, s in seconds_ago.items()}
        session.execute(update(Job).where(Job.id == job_id).values(**values))
        session.commit()


def state(job_id: str) -> Job:
    with get_session_factory()() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def upkeep() -> Any:
    with get_session_factory()() as session:
        return run_upkeep(session, get_settings(), utcnow())


def test_a_dead_attempt_is_requeued_then_fails_after_max_attempts(api_client: TestClient) -> None:
    job_id = api_client.post("/v1/jobs", json=JOB).json()["id"]
    settings = get_settings()
    for attempt in range(1, settings.max_attempts + 1):
        assert claim(job_id) == attempt
        assert upkeep().requeued == [], "a fresh heartbeat is a live attempt"
        age(job_id, heartbeat_at=settings.lease_seconds + 1)
        result = upkeep()
        if attempt < settings.max_attempts:
            assert result.requeued == [job_id] and state(job_id).status == "queued"
        else:
            assert result.failed == [job_id]
    final = state(job_id)
    assert (final.status, final.error_type, final.attempts) == ("failed", "worker_lost", 3)
    assert "stopped answering 3 times" in (final.error_message or "")


def test_handing_back_does_not_count_as_a_lost_attempt(api_client: TestClient) -> None:
    job_id = api_client.post("/v1/jobs", json=JOB).json()["id"]
    for _ in range(4):
        attempt = claim(job_id)
        with get_session_factory()() as session:
            assert transition(session, job_id, JobStatus.QUEUED, attempt=attempt, requeues=Job.requeues + 1)
            session.commit()
    claim(job_id)
    age(job_id, heartbeat_at=get_settings().lease_seconds + 1)
    assert upkeep().requeued == [job_id], "four hand-backs and one death are one lost attempt"


def test_a_queued_job_whose_message_is_gone_is_sent_again(api_client: TestClient) -> None:
    job_id = api_client.post("/v1/jobs", json=JOB).json()["id"]
    assert queue_depth(QUEUE_TRAIN) == 1
    age(job_id, enqueued_at=get_settings().sweep_after_seconds + 1)
    assert upkeep().resent == [], "its message is still in the broker"
    # The broker loses it (a flush, a restart without persistence).
    with get_celery().connection_for_write() as connection:
        connection.default_channel.queue_purge(QUEUE_TRAIN)
    assert queue_depth(QUEUE_TRAIN) == 0
    assert upkeep().resent == [job_id]
    assert queue_depth(QUEUE_TRAIN) == 1
    assert upkeep().resent == [], "sent again once, not on every tick"
