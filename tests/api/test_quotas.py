"""Per-tenant limits on every path that creates something: POST /v1/jobs, retrain, a schedule's
trigger and its slots (all through one function), and uploads (stored bytes). On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.services.schedules import fire_due
from core.db import get_session_factory
from core.settings import get_settings
from models import Job, Schedule, ScheduleRun
from tests.support.files import csv_bytes, iris_like

JOB = {"dataset": "builtin:iris", "training": {"epochs": 1}}


def tenant_key(client: TestClient, name: str, **limits: int) -> dict[str, str]:
    created = client.post("/v1/tenants", json={"name": name, **limits})
    assert created.status_code == 201, created.text
    key = client.post("/v1/keys", json={"tenant": name, "name": "test", "scopes": ["read", "write"]})
    assert key.status_code == 201, key.text
    return {"Authorization": f"Bearer {key.json()['key']}"}


def post(client: TestClient, path: str, headers: dict[str, str], body: Any = None) -> Any:
    return client.post(path, json=body, headers=headers)


def queued_jobs(headers: dict[str, str], client: TestClient) -> int:
    return int(client.get("/v1/jobs", params={"status": "queued"}, headers=headers).json()["total"])


def test_the_queued_limit_applies_to_every_way_a_job_is_made(api_client: TestClient) -> None:
    small = tenant_key(api_client, "small", max_queued_jobs=2)
    first = post(api_client, "/v1/jobs", small, JOB)
    assert first.status_code == 201, first.text
    schedule = post(api_client, "/v1/schedules", small, {"name": "s", "cron": "0 3 * * *", "job": JOB})
    assert schedule.status_code == 201, schedule.text
    assert post(api_client, "/v1/jobs", small, JOB).status_code == 201

    refused = [
        post(api_client, "/v1/jobs", small, JOB),
        post(api_client, f"/v1/jobs/{first.json()['id']}/retrain", small),
        post(api_client, f"/v1/schedules/{schedule.json()['id']}/trigger", small),
    ]
    for response in refused:
        assert response.status_code == 429, response.text
        assert response.json()["error"] == "TooManyRequests"
        assert "Your tenant has 2 queued jobs and may have 2" in response.json()["detail"]
        assert int(response.headers["Retry-After"]) > 0
    assert queued_jobs(small, api_client) == 2

    # A slot that comes due while the tenant is at its limit is recorded as failed, with the reason.
    schedule_id = schedule.json()["id"]
    due = datetime.now(UTC) - timedelta(seconds=5)
    with get_session_factory()() as session:
        row = session.get(Schedule, schedule_id)
        assert row is not None
        row.next_run_at = due
        session.commit()
        fired = fire_due(session, get_settings(), datetime.now(UTC))
        assert [(f.outcome, f.job_id) for f in fired] == [("failed", None)]
        run = session.scalars(select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id)).one()
        assert run.outcome == "failed" and "may have 2" in (run.detail or "")
        assert not session.scalars(select(Job).where(Job.schedule_id == schedule_id)).all()
    assert queued_jobs(small, api_client) == 2

    # Another tenant is not held back by this one's limit.
    assert api_client.post("/v1/jobs", json=JOB).status_code == 201


def test_stored_bytes_are_limited_per_tenant_and_nothing_is_kept_past_it(api_client: TestClient) -> None:
    content = csv_bytes(*iris_like(60))
    tight = tenant_key(api_client, "tight", max_stored_bytes=len(content) + 10)
    files = {"file": ("data.csv", content)}
    assert api_client.post("/v1/datasets", data={"name": "a"}, files=files, headers=tight).status_code == 201
    refused = api_client.post("/v1/datasets", data={"name": "b"}, files=files, headers=tight)
    assert refused.status_code == 413, refused.text
    assert "above its quota" in refused.json()["detail"]
    synthetic = api_client.post(
        "/v1/datasets/synthetic", json={"name": "syn", "n_samples": 200, "n_features": 5}, headers=tight
    )
    assert synthetic.status_code == 413, synthetic.text
    listed = api_client.get("/v1/datasets", headers=tight).json()
    assert [d["name"] for d in listed["items"]] == ["a"]
    # The default tenant's own quota is untouched by another's usage.
    assert api_client.post("/v1/datasets", data={"name": "b"}, files=files).status_code == 201


def test_each_tenant_has_its_own_dataset_names_and_versions(api_client: TestClient) -> None:
    other = tenant_key(api_client, "other")
    files = {"file": ("data.csv", csv_bytes(*iris_like(40)))}
    mine = api_client.post("/v1/datasets", data={"name": "flowers", "target": "species"}, files=files).json()
    theirs = api_client.post(
        "/v1/datasets", data={"name": "flowers", "target": "species"}, files=files, headers=other
    ).json()
    assert (mine["version"], theirs["version"]) == (1, 1) and mine["id"] != theirs["id"]
    again = api_client.post(
        "/v1/datasets", data={"name": "flowers", "target": "species"}, files=files, headers=other
    ).json()
    assert again["version"] == 2
    job = api_client.post("/v1/jobs", json={"dataset": "flowers@latest", "training": {"epochs": 1}})
    assert job.status_code == 201 and job.json()["dataset"]["id"] == mine["id"]
