"""Schedules: the firing rules with time as a parameter (month ends, daylight saving, downtime under
each catch-up policy, overlap under each policy, schedulers racing) and the HTTP API, including every
kind of bad input. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.services.schedules import fire_due
from core.db import get_session_factory
from core.settings import get_settings
from models import Job, JobStatus, Schedule, ScheduleRun, transition
from tests.support.files import csv_bytes, iris_like

JOB = {"dataset": "builtin:iris", "training": {"epochs": 1}}


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/schedules", json={"name": "s", "cron": "* * * * *", "job": JOB, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def set_next(schedule_id: str, when: datetime) -> None:
    with get_session_factory()() as session:
        schedule = session.get(Schedule, schedule_id)
        assert schedule is not None
        schedule.next_run_at = when
        session.commit()


def fire(now: datetime) -> list[Any]:
    with get_session_factory()() as session:
        return fire_due(session, get_settings(), now)


def runs(schedule_id: str) -> list[ScheduleRun]:
    with get_session_factory()() as session:
        return list(
            session.scalars(
                select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id).order_by(ScheduleRun.scheduled_for)
            )
        )


def jobs_of(schedule_id: str) -> list[Job]:
    with get_session_factory()() as session:
        return list(session.scalars(select(Job).where(Job.schedule_id == schedule_id).order_by(Job.scheduled_for)))


def finish(job_id: str, value: float | None = None) -> None:
    with get_session_factory()() as session:
        assert transition(session, job_id, JobStatus.RUNNING) is not None
        result = {"validation": {"accuracy": value, "data_loss": 0.5}} if value is not None else None
        assert transition(session, job_id, JobStatus.SUCCEEDED, result=result) is not None
        session.commit()


T0 = datetime(2026, 1, 30, 12, 0, tzinfo=UTC)


def test_each_minute_fires_once_and_only_when_due(api_client: TestClient) -> None:
    schedule = create(api_client, overlap="queue")
    set_next(schedule["id"], T0)
    assert fire(T0 - timedelta(seconds=1)) == []
    first = fire(T0 + timedelta(seconds=2))
    assert [(f.scheduled_for, f.outcome) for f in first] == [(T0, "started")]
    assert fire(T0 + timedelta(seconds=3)) == [], "a slot fires once"
    second = fire(T0 + timedelta(minutes=1, seconds=1))
    assert [f.scheduled_for for f in second] == [T0 + timedelta(minutes=1)]
    jobs = jobs_of(schedule["id"])
    assert [j.scheduled_for for j in jobs] == [T0, T0 + timedelta(minutes=1)]
    assert all(j.status == "queued" and j.dataset_id == "builtin:iris" for j in jobs)


def test_month_end_schedule_skips_short_months(api_client: TestClient) -> None:
    schedule = create(api_client, cron="0 0 31 * *")
    set_next(schedule["id"], datetime(2026, 1, 31, tzinfo=UTC))
    fire(datetime(2026, 1, 31, 0, 0, 5, tzinfo=UTC))
    assert api_client.get(f"/v1/schedules/{schedule['id']}").json()["next_run_at"] == "2026-03-31T00:00:00Z"


def test_daylight_saving_gap_fires_once_when_the_gap_ends(api_client: TestClient) -> None:
    schedule = create(api_client, cron="30 2 * * *", timezone="America/New_York")
    set_next(schedule["id"], datetime(2026, 3, 8, 7, 0, tzinfo=UTC))  # 03:00 EDT, the end of the gap
    fired = fire(datetime(2026, 3, 8, 7, 0, 1, tzinfo=UTC))
    assert [f.outcome for f in fired] == ["started"]
    assert api_client.get(f"/v1/schedules/{schedule['id']}").json()["next_run_at"] == "2026-03-09T06:30:00Z"


@pytest.mark.parametrize("catch_up", ["skip", "run_once"])
def test_downtime_follows_the_catch_up_policy(api_client: TestClient, catch_up: str) -> None:
    schedule = create(api_client, catch_up=catch_up, overlap="queue")
    set_next(schedule["id"], T0)
    back = T0 + timedelta(minutes=10, seconds=30)  # ten slots passed while no scheduler ran
    fired = fire(back)
    assert len(fired) == 1
    expected = "started" if catch_up == "run_once" else "skipped_missed"
    assert (fired[0].scheduled_for, fired[0].outcome) == (T0, expected)
    assert len(jobs_of(schedule["id"])) == (1 if catch_up == "run_once" else 0)
    record = runs(schedule["id"])[0]
    assert record.detail is not None and "no scheduler ran" in record.detail
    # It resumes at the first slot that was not missed (the one 30 s ago is still on time).
    resumed = T0 + timedelta(minutes=10)
    assert api_client.get(f"/v1/schedules/{schedule['id']}").json()["next_run_at"] == resumed.isoformat().replace(
        "+00:00", "Z"
    )
    assert [f.scheduled_for for f in fire(back)] == [resumed]


@pytest.mark.parametrize("overlap", ["skip", "queue"])
def test_overlap_policy_while_the_previous_run_is_active(api_client: TestClient, overlap: str) -> None:
    schedule = create(api_client, overlap=overlap)
    set_next(schedule["id"], T0)
    fire(T0)
    second = fire(T0 + timedelta(minutes=1))
    assert [f.outcome for f in second] == ["skipped_overlap" if overlap == "skip" else "started"]
    finish(jobs_of(schedule["id"])[0].id, 0.9)
    if overlap == "queue":
        finish(jobs_of(schedule["id"])[1].id, 0.95)
    third = fire(T0 + timedelta(minutes=2))
    assert [f.outcome for f in third] == ["started"], "free again once the previous run finished"


def test_racing_schedulers_fire_each_slot_exactly_once(api_client: TestClient) -> None:
    schedules = [create(api_client, name=f"s{i}", overlap="queue") for i in range(3)]
    for schedule in schedules:
        set_next(schedule["id"], T0)
    outcomes: list[Any] = []
    lock = threading.Lock()
    for minute in range(4):
        now = T0 + timedelta(minutes=minute, seconds=1)
        barrier = threading.Barrier(4)

        def scheduler(now: datetime = now, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            fired = fire(now)
            with lock:
                outcomes.extend(fired)

        threads = [threading.Thread(target=scheduler) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for schedule in schedules:
        jobs = jobs_of(schedule["id"])
        assert [j.scheduled_for for j in jobs] == [T0 + timedelta(minutes=m) for m in range(4)]
    assert len(outcomes) == 12, "each slot reported by exactly one of the racing schedulers"


def test_disable_patch_and_delete(api_client: TestClient) -> None:
    schedule = create(api_client)
    off = api_client.patch(f"/v1/schedules/{schedule['id']}", json={"enabled": False}).json()
    assert off["enabled"] is False and off["next_run_at"] is None
    assert fire(datetime.now(UTC) + timedelta(days=1)) == []
    hourly = api_client.patch(f"/v1/schedules/{schedule['id']}", json={"enabled": True, "cron": "0 * * * *"}).json()
    assert hourly["next_run_at"].endswith(":00:00Z")
    triggered = api_client.post(f"/v1/schedules/{schedule['id']}/trigger")
    assert triggered.status_code == 201 and triggered.json()["schedule_id"] == schedule["id"]
    assert api_client.delete(f"/v1/schedules/{schedule['id']}").status_code == 204
    assert api_client.get(f"/v1/schedules/{schedule['id']}").status_code == 404
    assert api_client.get(f"/v1/jobs/{triggered.json()['id']}").json()["schedule_id"] == schedule["id"]


def test_runs_show_metrics_and_their_change(api_client: TestClient) -> None:
    schedule = create(api_client, overlap="queue")
    set_next(schedule["id"], T0)
    for minute in range(3):
        fire(T0 + timedelta(minutes=minute))
    jobs = jobs_of(schedule["id"])
    finish(jobs[0].id, 0.90)
    finish(jobs[1].id, 0.85)
    page = api_client.get(f"/v1/schedules/{schedule['id']}/runs").json()
    assert page["total"] == 3
    newest, middle, oldest = page["items"]
    assert newest["job"]["status"] == "queued" and newest["job"]["value"] is None
    assert middle["job"]["value"] == pytest.approx(0.85) and middle["job"]["change"] == pytest.approx(-0.05)
    assert oldest["job"]["change"] is None and oldest["job"]["dataset"]["name"] == "builtin:iris"
    assert middle["job"]["metric"] == "accuracy"


def test_latest_resolves_when_the_slot_fires_and_retrain_moves_to_the_newest(api_client: TestClient) -> None:
    header, rows = iris_like()
    api_client.post(
        "/v1/datasets",
        data={"name": "flowers", "target": "species"},
        files={"file": ("f.csv", csv_bytes(header, rows))},
    )
    schedule = create(api_client, job={"dataset": "flowers@latest", "training": {"epochs": 1}}, overlap="queue")
    set_next(schedule["id"], T0)
    fire(T0)
    api_client.post(
        "/v1/datasets",
        data={"name": "flowers", "target": "species"},
        files={"file": ("f.csv", csv_bytes(header, rows[:45]))},
    )
    fire(T0 + timedelta(minutes=1))
    assert [j.dataset_version for j in jobs_of(schedule["id"])] == [1, 2]

    first = jobs_of(schedule["id"])[0]
    response = api_client.post(f"/v1/jobs/{first.id}/retrain")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["job"]["parent_id"] == first.id and body["job"]["dataset"]["version"] == 2
    assert body["changes"]["dataset"]["from"]["version"] == 1 and body["changes"]["dataset"]["to"]["version"] == 2
    again = api_client.post(f"/v1/jobs/{body['job']['id']}/retrain").json()
    assert again["changes"] == {}


def test_a_template_whose_dataset_disappeared_records_a_failed_slot(api_client: TestClient) -> None:
    header, rows = iris_like()
    dataset = api_client.post(
        "/v1/datasets",
        data={"name": "flowers", "target": "species"},
        files={"file": ("f.csv", csv_bytes(header, rows))},
    ).json()
    schedule = create(api_client, job={"dataset": "flowers@latest", "training": {"epochs": 1}})
    api_client.delete(f"/v1/datasets/{dataset['id']}")
    set_next(schedule["id"], T0)
    assert [f.outcome for f in fire(T0)] == ["failed"]
    assert "no dataset 'flowers@latest'" in (runs(schedule["id"])[0].detail or "")


BAD_SCHEDULES: list[tuple[dict[str, Any], str]] = [
    ({"cron": "61 * * * *"}, "the minute field has 61, outside 0-59"),
    ({"cron": "* * *"}, "has 3"),
    ({"cron": "0 0 * * funday"}, "the day of week field has 'funday'"),
    ({"timezone": "Mars/Olympus"}, "'Mars/Olympus' is not a known IANA time zone"),
    ({"job": {"dataset": "nowhere@latest"}}, "There is no dataset 'nowhere@latest'"),
    ({"job": {"dataset": "builtin:wine", "training": {"epochs": 501}}}, "above this server's limit of 500"),
]


@pytest.mark.parametrize(("fields", "phrase"), BAD_SCHEDULES)
def test_bad_schedules_are_422_with_a_sentence(api_client: TestClient, fields: dict[str, Any], phrase: str) -> None:
    response = api_client.post("/v1/schedules", json={"name": "s", "cron": "* * * * *", "job": JOB, **fields})
    assert response.status_code == 422, response.text
    assert phrase in response.json()["detail"]
    assert api_client.get("/v1/schedules").json()["total"] == 0


def test_an_invalid_template_gets_the_job_api_messages(api_client: TestClient) -> None:
    template = {"dataset": "builtin:wine", "regularization": {"l1": -1}}
    as_job = api_client.post("/v1/jobs", json=template).json()["detail"][0]
    as_template = api_client.post("/v1/schedules", json={"name": "s", "cron": "* * * * *", "job": template})
    assert as_template.status_code == 422
    error = as_template.json()["detail"][0]
    assert error["msg"] == as_job["msg"] and error["loc"] == ["body", "job", *as_job["loc"][1:]]
