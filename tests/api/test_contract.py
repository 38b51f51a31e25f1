"""The typed, strict contract: request bodies are not coerced, a body that is not JSON gets a 400
sentence saying where it breaks, explicit nulls are refused where a field cannot be null, a job
without a validation split has metrics, and the OpenAPI schema documents every status an operation
can answer."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from models import JobStatus
from worker import runner

JOB = {"dataset": "builtin:iris", "training": {"epochs": 2}}
SCHEDULE = {"name": "nightly", "cron": "0 3 * * *", "job": JOB}


def submit(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


# (path, body, where the 422 points, the sentence a person reads)
NOT_COERCED = [
    ("/v1/jobs", {**JOB, "regularization": {"l1": "0.01"}}, ["regularization", "l1"], "Input should be a valid number"),
    ("/v1/jobs", {**JOB, "training": {"seed": False}}, ["training", "seed"], "Input should be a valid integer"),
    ("/v1/jobs", {**JOB, "training": {"epochs": 10.0}}, ["training", "epochs"], "Input should be a valid integer"),
    ("/v1/jobs", {**JOB, "model": {"batch_norm": 1}}, ["model", "batch_norm"], "Input should be a valid boolean"),
    ("/v1/jobs", {**JOB, "optimizer": {"betas": ["0.9", 0.99]}}, ["optimizer", "betas", 0], "valid number"),
    ("/v1/jobs", {**JOB, "name": 7}, ["name"], "Input should be a valid string"),
    ("/v1/schedules", {**SCHEDULE, "enabled": 0}, ["enabled"], "Input should be a valid boolean"),
    (
        "/v1/schedules",
        {**SCHEDULE, "job": {**JOB, "training": {"epochs": "2"}}},
        ["job", "training", "epochs"],
        "integer",
    ),
    ("/v1/datasets/synthetic", {"name": "s", "noise": "1.5"}, ["noise"], "Input should be a valid number"),
    ("/v1/datasets/synthetic", {"name": "s", "n_samples": 100.0}, ["n_samples"], "Input should be a valid integer"),
]


@pytest.mark.parametrize(("path", "body", "loc", "sentence"), NOT_COERCED)
def test_values_of_the_wrong_json_type_are_refused_not_coerced(
    api_client: TestClient, path: str, body: dict[str, Any], loc: list[Any], sentence: str
) -> None:
    response = api_client.post(path, json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(error["loc"] == ["body", *loc] and sentence in error["msg"] for error in errors), errors


def test_a_prediction_row_of_booleans_is_refused(api_client: TestClient) -> None:
    job = submit(api_client, JOB)
    response = api_client.post(f"/v1/jobs/{job['id']}/predict", json={"rows": [[True, 1, 2, 3]]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "rows", 0, 0]


def test_json_integers_are_numbers_and_choices_are_strings(api_client: TestClient) -> None:
    job = submit(
        api_client,
        {
            **JOB,
            "model": {"type": "linear", "dropout": 0},
            "regularization": {"l1": 0, "l2": 1, "l1_method": "subgradient"},
            "optimizer": {"type": "adam", "lr": 1, "betas": [0, 0]},
            "training": {"epochs": 2, "validation_fraction": 0, "early_stopping": None},
        },
    )
    spec = job["spec"]
    assert spec["optimizer"] == {"type": "adam", "lr": 1.0, "momentum": 0.0, "betas": [0.0, 0.0]}
    assert spec["regularization"]["l2"] == 1.0 and spec["regularization"]["l1_method"] == "subgradient"
    assert job["status"] == "queued"


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ('{"dataset": "builtin:wine",', "line 1, column 28 (character 27)"),
        ("dataset=builtin:wine", "line 1, column 1 (character 0)"),
        ('{\n  "dataset": "builtin:wine",\n  "training": {"epochs": 2,}\n}', "line 3, column 28 (character 58)"),
        ("", None),
    ],
)
def test_a_body_that_is_not_json_is_400_saying_where(api_client: TestClient, raw: str, where: str | None) -> None:
    response = api_client.post("/v1/jobs", content=raw, headers={"content-type": "application/json"})
    if where is None:  # no body at all is a missing body, not malformed JSON
        assert response.status_code == 422
        return
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "MalformedJSON"
    assert body["detail"].startswith("The request body is not valid JSON: ")
    assert body["detail"].endswith(f" at {where}.")
    assert api_client.get("/v1/jobs").json()["total"] == 0


def test_a_body_that_is_not_text_is_400(api_client: TestClient) -> None:
    response = api_client.post(
        "/v1/jobs", content=b'{"dataset": "\xff\xfe"}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": "The request body is not valid JSON: it is not UTF-8 text.",
        "error": "MalformedJSON",
    }


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_not_sent_as_json_is_415_with_a_sentence(api_client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = api_client.post("/v1/jobs", content=b'{"dataset": "builtin:iris"}', headers=headers)
    assert response.status_code == 415, response.text
    body = response.json()
    assert body["error"] == "UnsupportedMediaType"
    assert "Content-Type: application/json" in body["detail"]
    sent = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
    assert sent in body["detail"]


@pytest.mark.parametrize("null", ["cron", "enabled", "job", "name", "timezone", "overlap", "catch_up"])
def test_patching_a_schedule_with_an_explicit_null_is_422_and_changes_nothing(
    api_client: TestClient, null: str
) -> None:
    created = api_client.post("/v1/schedules", json=SCHEDULE).json()
    response = api_client.patch(f"/v1/schedules/{created['id']}", json={null: None})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", null]
    assert f"{null} cannot be null; leave the field out to keep its current value" in error["msg"]
    assert api_client.get(f"/v1/schedules/{created['id']}").json() == created


def test_patching_a_schedule_leaves_out_fields_unchanged(api_client: TestClient) -> None:
    created = api_client.post("/v1/schedules", json=SCHEDULE).json()
    response = api_client.patch(f"/v1/schedules/{created['id']}", json={"enabled": False})
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["enabled"] is False and changed["next_run_at"] is None
    assert {k: v for k, v in changed.items() if k not in ("enabled", "next_run_at", "updated_at")} == {
        k: v for k, v in created.items() if k not in ("enabled", "next_run_at", "updated_at")
    }


def test_metrics_of_a_job_without_validation_split_are_served_with_null_validation(api_client: TestClient) -> None:
    job = submit(api_client, {**JOB, "training": {"epochs": 2, "validation_fraction": 0}})
    runner.run_job(job["id"])
    assert api_client.get(f"/v1/jobs/{job['id']}").json()["status"] == JobStatus.SUCCEEDED
    response = api_client.get(f"/v1/jobs/{job['id']}/metrics")
    assert response.status_code == 200, response.text
    epochs = response.json()["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert all(e["val_data_loss"] is None and e["val_accuracy"] is None for e in epochs)
    assert all(e["train_data_loss"] > 0 for e in epochs)


def operations(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    schema = client.get("/openapi.json").json()
    return [(method.upper(), path, op) for path, methods in schema["paths"].items() for method, op in methods.items()]


def error_schema(operation: dict[str, Any], status: str) -> str:
    return str(operation["responses"][status]["content"]["application/json"]["schema"])


def test_every_operation_that_needs_a_key_documents_401_and_403(api_client: TestClient) -> None:
    secured = [(m, p, op) for m, p, op in operations(api_client) if op.get("security")]
    assert len(secured) > 20
    for method, path, operation in secured:
        for status in ("401", "403"):
            assert status in operation["responses"], f"{method} {path} does not document {status}"
            assert "ErrorRead" in error_schema(operation, status), f"{method} {path} {status}"


def test_every_json_body_documents_400_415_and_422(api_client: TestClient) -> None:
    with_body = [
        (m, p, op)
        for m, p, op in operations(api_client)
        if "application/json" in op.get("requestBody", {}).get("content", {})
    ]
    assert {(m, p) for m, p, _ in with_body} >= {
        ("POST", "/v1/jobs"),
        ("POST", "/v1/jobs/{job_id}/predict"),
        ("POST", "/v1/schedules"),
        ("PATCH", "/v1/schedules/{schedule_id}"),
        ("POST", "/v1/datasets/synthetic"),
    }
    for method, path, operation in with_body:
        for status in ("400", "415"):
            assert "ErrorRead" in error_schema(operation, status), f"{method} {path} {status}"
        assert "HTTPValidationError" in error_schema(operation, "422"), f"{method} {path}"
        assert "ErrorRead" in error_schema(operation, "422"), f"{method} {path}"


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("POST", "/v1/jobs/{job_id}/retrain", {"404", "422", "429"}),
        ("POST", "/v1/schedules/{schedule_id}/trigger", {"404", "409", "422", "429"}),
        ("POST", "/v1/jobs", {"409", "422", "429"}),
        ("POST", "/v1/jobs/{job_id}/cancel", {"404", "409"}),
        ("POST", "/v1/jobs/{job_id}/predict", {"404", "409", "413", "422"}),
        ("GET", "/v1/jobs/{job_id}/artifact", {"404", "409"}),
        ("DELETE", "/v1/datasets/{dataset_id}", {"404", "409"}),
        ("POST", "/v1/datasets", {"413", "422"}),
        ("PATCH", "/v1/schedules/{schedule_id}", {"404", "422"}),
    ],
)
def test_domain_errors_are_documented_for_their_operation(
    api_client: TestClient, method: str, path: str, statuses: set[str]
) -> None:
    operation = next(op for m, p, op in operations(api_client) if (m, p) == (method, path))
    assert statuses <= set(operation["responses"]), sorted(operation["responses"])
    for status in statuses:
        assert "ErrorRead" in error_schema(operation, status), status
    if "429" in statuses:
        assert "Retry-After" in operation["responses"]["429"].get("headers", {})


def test_lists_share_one_page_shape_under_readable_names(api_client: TestClient) -> None:
    schemas = api_client.get("/openapi.json").json()["components"]["schemas"]
    assert not [name for name in schemas if name.startswith("Page")]
    for name, item in [("JobPage", "JobRead"), ("DatasetPage", "DatasetRead"), ("SchedulePage", "ScheduleRead")]:
        page = schemas[name]
        assert set(page["properties"]) == {"items", "total", "limit", "offset"}, name
        assert page["properties"]["items"]["items"] == {"$ref": f"#/components/schemas/{item}"}
    assert schemas["RunPage"]["properties"]["items"]["items"] == {"$ref": "#/components/schemas/RunRead"}


def test_job_status_is_one_enum_everywhere(api_client: TestClient) -> None:
    schema = api_client.get("/openapi.json").json()
    values = [status.value for status in JobStatus]
    assert values == ["queued", "running", "succeeded", "failed", "canceled"]
    assert schema["components"]["schemas"]["JobStatus"]["enum"] == values
    job_status = schema["components"]["schemas"]["JobRead"]["properties"]["status"]
    assert job_status == {"$ref": "#/components/schemas/JobStatus"}
    parameter = next(p for p in schema["paths"]["/v1/jobs"]["get"]["parameters"] if p["name"] == "status")
    assert {"$ref": "#/components/schemas/JobStatus"} in parameter["schema"]["anyOf"]


@pytest.mark.parametrize(
    ("path", "name", "once"),
    [
        ("/v1/jobs?limit=5&limit=6", "limit", "/v1/jobs?limit=6"),
        ("/v1/tenants?offset=null&offset=0.0&limit=1", "offset", "/v1/tenants?offset=0.0&limit=1"),
    ],
)
def test_a_query_parameter_given_twice_is_refused_not_read_as_its_last_value(
    api_client: TestClient, path: str, name: str, once: str
) -> None:
    response = api_client.get(path)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", name]
    assert error["msg"] == f"`{name}` is given 2 times; give it once."
    assert api_client.get(once).status_code == 200, "the last value alone is fine"
