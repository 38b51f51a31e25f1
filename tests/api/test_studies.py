"""Studies through HTTP without a worker: expansion into members, every bad input with its sentence,
limits, tenancy, idempotency and cancel. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

LINEAR = {"dataset": "builtin:diabetes", "model": {"type": "linear"}, "training": {"epochs": 2}}
MLP = {"dataset": "builtin:iris", "model": {"type": "mlp", "hidden_layers": [8]}, "training": {"epochs": 2}}


def submit(client: TestClient, body: dict[str, Any], **kwargs: Any) -> Any:
    return client.post("/v1/studies", json=body, **kwargs)


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


def members(client: TestClient, study_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/studies/{study_id}/members", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_grid_crossed_with_variants_makes_one_member_per_setting(api_client: TestClient) -> None:
    study = created(
        submit(
            api_client,
            {
                "name": "paired",
                "job": MLP,
                "search": {"regularization.l2": {"log_range": [0.001, 0.1, 3]}},
                "variants": {"none": {}, "dropout": {"model": {"dropout": 0.2}}},
                "cv": {"folds": 3},
                "select": {"rule": "1se"},
            },
        )
    )
    assert (study["status"], study["members"], study["metric"], study["rule"]) == ("queued", 6, "accuracy", "1se")
    assert study["progress"] == {"fits": 0, "total": 18}
    assert study["dataset"]["id"] == "builtin:iris" and study["task"] == "classification"
    page = members(api_client, study["id"], limit=10)
    assert page["total"] == 6
    rows = page["items"]
    assert [(m["variant"], m["params"]["regularization.l2"]) for m in rows] == [
        ("none", 0.1),
        ("none", pytest.approx(0.01)),
        ("none", 0.001),
        ("dropout", 0.1),
        ("dropout", pytest.approx(0.01)),
        ("dropout", 0.001),
    ]
    # Each member's spec is the normalized job it would be: defaults filled, its own setting applied.
    assert rows[3]["spec"]["model"]["dropout"] == 0.2 and rows[0]["spec"]["model"]["dropout"] == 0.0
    assert rows[4]["spec"]["regularization"]["l2"] == pytest.approx(0.01)
    assert all(m["fold_scores"] == [None, None, None] and m["mean"] is None for m in rows)
    listed = api_client.get("/v1/studies").json()
    assert [s["id"] for s in listed["items"]] == [study["id"]]
    # A study is not a job.
    assert api_client.get("/v1/jobs").json()["total"] == 0
    assert api_client.get(f"/v1/jobs/{study['id']}").status_code == 404


def test_a_path_axis_is_filled_from_the_data_when_the_study_runs(api_client: TestClient) -> None:
    study = created(
        submit(
            api_client,
            {
                "job": {**LINEAR, "training": {"validation_fraction": 0.0}},
                "search": {
                    "regularization.elastic_net.alpha": {"path": {"n": 10}},
                    "regularization.elastic_net.l1_ratio": {"values": [0.5, 1.0]},
                },
                "cv": {"folds": 5},
            },
        )
    )
    assert study["members"] == 20 and study["metric"] == "mse"
    first = members(api_client, study["id"], limit=1)["items"][0]
    assert first["params"] == {"regularization.elastic_net.alpha": None, "regularization.elastic_net.l1_ratio": 0.5}
    path = api_client.get(f"/v1/studies/{study['id']}/path")
    assert path.status_code == 409 and "computed when it finishes" in path.json()["detail"]


BAD = [
    (
        {"job": MLP, "search": {"regularization.l3": {"values": [0.1]}}},
        "search names 'regularization.l3', which is not a field of the job spec",
    ),
    (
        {"job": MLP, "search": {"model.dropout": {"values": [0.1, 1.5]}}},
        "Member 1 (model.dropout=1.5) is not a valid job: model.dropout:",
    ),
    (
        {"job": MLP, "variants": {"bad": {"model": {"hidden_layers": [0]}}}},
        "Member 0 (variant 'bad') is not a valid job:",
    ),
    (
        {"job": LINEAR, "search": {"optimizer.lr": {"path": {}}}},
        "search.optimizer.lr asks for `path`, which applies only to regularization.l1",
    ),
    (
        {"job": MLP, "search": {"regularization.l2": {"path": {}}}},
        "which is defined for linear models; use `log_range` for networks",
    ),
    (
        {"job": {**LINEAR, "dataset": "builtin:iris"}, "search": {"regularization.l2": {"path": {}}}},
        "scikit-learn's alpha grid for linear regression; this study classifies",
    ),
    ({"job": MLP, "cv": {"folds": 1}}, "greater than or equal to 2"),
    ({"job": MLP, "cv": {"folds": 51}}, "less than or equal to 50"),
    (
        {"job": {**MLP, "training": {"test_fraction": 0.2}}, "cv": {"folds": 41}},
        "more than the 40 non-test rows of the smallest class",
    ),
    ({"job": MLP, "select": {"rule": "1se"}}, "select.rule '1se' needs cross-validation"),
    (
        {
            "job": MLP,
            "search": {"regularization.l2": {"log_range": [0.001, 1, 40]}, "model.dropout": {"values": [0, 0.1]}},
            "variants": {"a": {}, "b": {}},
        },
        "This study has 160 members (2 x 40 x 2), above this server's limit of 100",
    ),
    ({"job": MLP, "select": {"metric": "mse"}}, "select.metric 'mse' is a regression metric"),
    ({"job": LINEAR, "search": {"regularization.l2": {"values": [0.1], "log_range": [1, 2, 2]}}}, "exactly one of"),
    ({"job": {**MLP, "dataset": "builtin:nope"}}, "There is no built-in dataset 'builtin:nope'"),
]


@pytest.mark.parametrize(("body", "sentence"), BAD, ids=[sentence[:40] for _, sentence in BAD])
def test_bad_studies_are_422_with_a_sentence_and_nothing_is_made(
    api_client: TestClient, monkeypatch: pytest.MonkeyPatch, body: dict[str, Any], sentence: str
) -> None:
    from core.settings import get_settings

    monkeypatch.setattr(get_settings(), "max_study_members", 100)
    response = submit(api_client, body)
    assert response.status_code == 422, response.text
    assert sentence in response.text, response.text
    assert api_client.get("/v1/studies").json()["total"] == 0


def test_idempotency_cancel_and_tenancy(api_client: TestClient) -> None:
    body = {"job": MLP, "variants": {"none": {}, "l1": {"regularization": {"l1": 0.001}}}}
    first = created(submit(api_client, body, headers={"Idempotency-Key": "study-1"}))
    again = created(submit(api_client, body, headers={"Idempotency-Key": "study-1"}))
    assert again["id"] == first["id"] and api_client.get("/v1/studies").json()["total"] == 1
    canceled = api_client.post(f"/v1/studies/{first['id']}/cancel")
    assert canceled.status_code == 202 and canceled.json()["status"] == "canceled"
    twice = api_client.post(f"/v1/studies/{first['id']}/cancel")
    assert twice.status_code == 409 and "only queued or running studies can be canceled" in twice.json()["detail"]
    other = created(api_client.post("/v1/tenants", json={"name": "other"}))
    key = created(api_client.post("/v1/keys", json={"tenant": other["id"], "name": "k", "scopes": ["read"]}))
    headers = {"Authorization": f"Bearer {key['key']}"}
    assert api_client.get(f"/v1/studies/{first['id']}", headers=headers).status_code == 404
    assert api_client.get("/v1/studies", headers=headers).json()["total"] == 0
    assert submit(api_client, body, headers=headers).status_code == 403


def test_the_queued_limit_counts_studies(api_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import get_settings

    monkeypatch.setattr(get_settings(), "tenant_max_queued_jobs", 1)
    created(submit(api_client, {"job": MLP}))
    refused = submit(api_client, {"job": MLP})
    assert refused.status_code == 429 and "may have 1" in refused.json()["detail"]
    assert api_client.post("/v1/jobs", json=MLP).status_code == 429


def test_a_schedule_can_run_a_study(api_client: TestClient) -> None:
    from datetime import UTC, datetime, timedelta

    from api.services.schedules import fire_due
    from core.db import get_session_factory
    from core.settings import get_settings
    from models import Schedule

    study = {"job": MLP, "search": {"regularization.l2": {"values": [0.0, 0.01]}}, "cv": {"folds": 3}}
    body = {"name": "nightly", "cron": "0 3 * * *", "study": study, "overlap": "queue"}
    created_schedule = api_client.post("/v1/schedules", json=body)
    assert created_schedule.status_code == 201, created_schedule.text
    schedule = created_schedule.json()
    assert schedule["job"] is None and schedule["study"]["search"] == study["search"]

    triggered = api_client.post(f"/v1/schedules/{schedule['id']}/trigger")
    assert triggered.status_code == 201, triggered.text
    assert triggered.json()["members"] == 2 and triggered.json()["progress"]["total"] == 6

    with get_session_factory()() as session:
        row = session.get(Schedule, schedule["id"])
        assert row is not None
        row.next_run_at = datetime.now(UTC) - timedelta(seconds=5)
        session.commit()
        fired = fire_due(session, get_settings(), datetime.now(UTC))
    assert [f.outcome for f in fired] == ["started"]
    listed = api_client.get("/v1/studies").json()
    assert listed["total"] == 2 and fired[0].job_id in {s["id"] for s in listed["items"]}
    runs = api_client.get(f"/v1/schedules/{schedule['id']}/runs").json()
    assert runs["total"] == 2

    both = api_client.post("/v1/schedules", json={"name": "x", "cron": "0 3 * * *", "study": study, "job": MLP})
    neither = api_client.post("/v1/schedules", json={"name": "x", "cron": "0 3 * * *"})
    for response in (both, neither):
        assert response.status_code == 422 and "exactly one of `job`" in response.text
    bad = api_client.post(
        "/v1/schedules",
        json={"name": "x", "cron": "0 3 * * *", "study": {**study, "cv": None, "select": {"rule": "1se"}}},
    )
    assert bad.status_code == 422 and "needs cross-validation" in bad.text
