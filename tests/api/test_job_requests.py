"""Submitting, reading, listing and canceling jobs through the HTTP API, and every kind of bad input
answered with a 4xx a person can act on."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.schemas.job import EXAMPLE_JOB


def submit(client: TestClient, body: dict[str, object]) -> dict[str, object]:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_submit_fills_defaults_and_resolves_elastic_net(api_client: TestClient) -> None:
    job = submit(
        api_client, {"dataset": "builtin:wine", "regularization": {"elastic_net": {"alpha": 0.2, "l1_ratio": 0.25}}}
    )
    assert job["status"] == "queued" and job["task"] == "classification"
    spec = job["spec"]
    assert isinstance(spec, dict)
    assert spec["regularization"]["l1"] == pytest.approx(0.05)
    assert spec["regularization"]["l2"] == pytest.approx(0.15)
    assert spec["regularization"]["exclude"] == ["bias", "norm"]
    assert spec["model"] == {
        "type": "mlp",
        "hidden_layers": [100],
        "activation": "relu",
        "dropout": 0.0,
        "channels": [16, 32],
        "kernel_size": 3,
        "batch_norm": False,
    }
    assert spec["optimizer"] == {"type": "adam", "lr": 0.001, "momentum": 0.0, "betas": [0.9, 0.999]}
    assert spec["training"]["epochs"] == 200 and spec["training"]["batch_size"] == 32
    assert spec["training"]["early_stopping"] == {"patience": 10, "min_delta": 0.0}
    assert spec["training"]["class_weight"] is None
    assert job["progress"] == {"epoch": 0, "epochs": 200}
    assert job["attempts"] == 0 and job["result"] is None and job["error"] is None


def test_the_optimizer_defaults_follow_the_model_and_the_optimizer(api_client: TestClient) -> None:
    """Every default is a number in the normalized spec: a linear model gets sgd with momentum, a
    named optimizer type its own learning rate, and without a validation split there is no early stopping."""
    linear = submit(api_client, {"dataset": "builtin:wine", "model": {"type": "linear"}})["spec"]
    assert linear["optimizer"] == {"type": "sgd", "lr": 0.01, "momentum": 0.9, "betas": [0.9, 0.999]}  # type: ignore[index]
    named = submit(api_client, {"dataset": "builtin:wine", "optimizer": {"type": "sgd"}})["spec"]
    assert named["optimizer"]["lr"] == 0.01 and named["optimizer"]["momentum"] == 0.0  # type: ignore[index]
    adamw = submit(api_client, {"dataset": "builtin:wine", "model": {"type": "linear"}, "optimizer": {"type": "adamw"}})
    assert adamw["spec"]["optimizer"]["lr"] == 0.001  # type: ignore[index]
    whole = submit(api_client, {"dataset": "builtin:wine", "training": {"validation_fraction": 0}})["spec"]
    assert whole["training"]["early_stopping"] is None  # type: ignore[index]
    weighted = submit(api_client, {"dataset": "builtin:wine", "training": {"class_weight": "balanced"}})["spec"]
    assert weighted["training"]["class_weight"] == "balanced"  # type: ignore[index]


def test_a_normalized_spec_can_be_submitted_again(api_client: TestClient) -> None:
    first = submit(api_client, EXAMPLE_JOB)
    again = submit(api_client, first["spec"])  # type: ignore[arg-type]
    assert again["spec"] == first["spec"]


def test_get_and_list(api_client: TestClient) -> None:
    ids = [submit(api_client, {"dataset": "builtin:iris", "name": f"job {i}"})["id"] for i in range(3)]
    assert api_client.get(f"/v1/jobs/{ids[0]}").json()["name"] == "job 0"
    page = api_client.get("/v1/jobs", params={"limit": 2, "offset": 0}).json()
    assert [job["id"] for job in page["items"]] == [ids[2], ids[1]]
    assert page["total"] == 3
    rest = api_client.get("/v1/jobs", params={"limit": 2, "offset": 2}).json()
    assert [job["id"] for job in rest["items"]] == [ids[0]]
    assert api_client.get("/v1/jobs", params={"status": "running"}).json() == {
        "items": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
    }


def test_cancel_a_queued_job_then_again(api_client: TestClient) -> None:
    job = submit(api_client, {"dataset": "builtin:iris"})
    response = api_client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "canceled"
    assert response.json()["finished_at"] is not None
    again = api_client.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert again.json() == {
        "detail": f"Job {job['id']} has already canceled; only queued or running jobs can be canceled.",
        "error": "Conflict",
    }


@pytest.mark.parametrize("path", ["/v1/jobs/{id}", "/v1/jobs/{id}/metrics", "/v1/jobs/{id}/weights"])
def test_unknown_job_is_404(api_client: TestClient, path: str) -> None:
    response = api_client.get(path.format(id="0b0e2a9e-8c1c-4a57-9d8c-2f7d2f1d6a11"))
    assert response.status_code == 404
    assert response.json()["error"] == "NotFound"
    assert "no job with id" in response.json()["detail"]


def test_cancel_unknown_job_is_404(api_client: TestClient) -> None:
    assert api_client.post("/v1/jobs/nope/cancel").status_code == 404


def test_weights_before_the_first_epoch_is_404_with_a_reason(api_client: TestClient) -> None:
    job = submit(api_client, {"dataset": "builtin:iris"})
    response = api_client.get(f"/v1/jobs/{job['id']}/weights")
    assert response.status_code == 404
    assert "after its first epoch" in response.json()["detail"]


# Each bad body, where the 422 names the offending field, and a phrase of the sentence a person reads.
BAD_BODIES = [
    ({"dataset": "builtin:wine", "regularization": {"l1": -0.1}}, ["regularization", "l1"], "greater than or equal"),
    ({"dataset": "builtin:wine", "regularization": {"l2": "lots"}}, ["regularization", "l2"], "valid number"),
    (
        {"dataset": "builtin:wine", "regularization": {"weight_decay": -1}},
        ["regularization", "weight_decay"],
        "greater than or equal",
    ),
    (
        {"dataset": "builtin:wine", "regularization": {"l1": 0.1, "elastic_net": {"alpha": 1, "l1_ratio": 0.5}}},
        ["regularization"],
        "give either elastic_net or l1/l2",
    ),
    (
        {"dataset": "builtin:wine", "regularization": {"elastic_net": {"alpha": 1, "l1_ratio": 1.5}}},
        ["regularization", "elastic_net", "l1_ratio"],
        "less than or equal to 1",
    ),
    (
        {"dataset": "builtin:wine", "regularization": {"elastic_net": {"alpha": 1, "l1_ratio": -0.1}}},
        ["regularization", "elastic_net", "l1_ratio"],
        "greater than or equal to 0",
    ),
    ({"dataset": "builtin:wine", "training": {"epochs": 0}}, ["training", "epochs"], "greater than or equal to 1"),
    ({"dataset": "builtin:wine", "model": {"type": "transformer"}}, ["model", "type"], "'linear', 'mlp' or 'cnn'"),
    ({"dataset": "builtin:wine", "model": {"activation": "swish"}}, ["model", "activation"], "'relu', 'tanh'"),
    ({"dataset": "builtin:wine", "model": {"hidden_layers": [0]}}, ["model", "hidden_layers"], "between 1 and"),
    (
        {"dataset": "builtin:wine", "optimizer": {"type": "adam", "momentum": 0.9}},
        ["optimizer"],
        "momentum applies to sgd only",
    ),
    ({"dataset": "builtin:wine", "optimizer": {"lr": 0}}, ["optimizer", "lr"], "greater than 0"),
    (
        {"dataset": "builtin:wine", "training": {"validation_fraction": 0.5, "test_fraction": 0.45}},
        ["training"],
        "at least 10% of rows",
    ),
    (
        {"dataset": "builtin:wine", "training": {"validation_fraction": 0, "early_stopping": {"patience": 3}}},
        ["training"],
        "set validation_fraction above 0",
    ),
    ({"dataset": "builtin:wine", "regularisation": {"l1": 0.1}}, ["regularisation"], "Extra inputs"),
    ({"regularization": {"l1": 0.1}}, ["dataset"], "Field required"),
    (
        {"dataset": "builtin:digits", "model": {"type": "cnn", "kernel_size": 4}},
        ["model", "kernel_size"],
        "kernel_size must be odd",
    ),
    ({"dataset": "builtin:wine", "regularization": {"max_norm": 0}}, ["regularization", "max_norm"], "greater than 0"),
    ({"dataset": "builtin:wine", "regularization": {"max_norm": -2}}, ["regularization", "max_norm"], "greater than 0"),
]


@pytest.mark.parametrize(("body", "loc", "phrase"), BAD_BODIES)
def test_invalid_spec_is_422_naming_the_field(
    api_client: TestClient, body: dict[str, object], loc: list[str], phrase: str
) -> None:
    response = api_client.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(error["loc"][1:] == loc and phrase in error["msg"] for error in errors), errors
    assert api_client.get("/v1/jobs").json()["total"] == 0, "a rejected job must not be stored"


@pytest.mark.parametrize(
    "raw",
    [
        '{"dataset": "builtin:wine", "regularization": {"l1": NaN}}',
        '{"dataset": "builtin:wine", "optimizer": {"lr": Infinity}}',
    ],
)
def test_non_finite_numbers_are_422_not_500(api_client: TestClient, raw: str) -> None:
    response = api_client.post("/v1/jobs", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "Input should be a finite number"


def test_malformed_json_is_400_with_a_sentence(api_client: TestClient) -> None:
    response = api_client.post(
        "/v1/jobs", content='{"dataset": "builtin:wine",', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "MalformedJSON"
    assert response.json()["detail"].startswith("The request body is not valid JSON")


# Bad input only the service can judge: a domain error with a sentence.
DOMAIN_BAD_BODIES = [
    ({"dataset": "builtin:nope"}, "There is no built-in dataset 'builtin:nope'"),
    ({"dataset": "sales@latest"}, "There is no dataset 'sales@latest'"),
    ({"dataset": "builtin:wine", "training": {"epochs": 501}}, "above this server's limit of 500"),
    ({"dataset": "builtin:wine", "model": {"type": "cnn"}}, "A cnn needs image-shaped data"),
    (
        {"dataset": "builtin:diabetes", "training": {"class_weight": "balanced"}},
        "training.class_weight weighs classes and this is a regression job",
    ),
    ({"dataset": "builtin:diabetes", "task": "classification"}, "has a continuous target"),
    ({"dataset": "builtin:wine", "target": "colour"}, "has no column 'colour'"),
    (
        {"dataset": "builtin:wine", "regularization": {"exclude": ["bias", "conv.*"]}},
        "pattern(s) 'conv.*' match no tensor of this network; its tensors are hidden.0.linear.weight",
    ),
]


@pytest.mark.parametrize(("body", "sentence"), DOMAIN_BAD_BODIES)
def test_domain_errors_are_422_with_a_sentence(api_client: TestClient, body: dict[str, object], sentence: str) -> None:
    response = api_client.post("/v1/jobs", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidInput"
    assert sentence in response.json()["detail"]
    assert api_client.get("/v1/jobs").json()["total"] == 0


def test_cnn_on_image_data_and_regression_on_class_labels_are_accepted(api_client: TestClient) -> None:
    assert submit(api_client, {"dataset": "builtin:digits", "model": {"type": "cnn"}})["task"] == "classification"
    assert submit(api_client, {"dataset": "builtin:wine", "task": "regression"})["task"] == "regression"


def test_bad_query_parameters_are_422(api_client: TestClient) -> None:
    assert api_client.get("/v1/jobs", params={"status": "sleeping"}).status_code == 422
    assert api_client.get("/v1/jobs", params={"limit": 0}).status_code == 422
    job = submit(api_client, {"dataset": "builtin:iris"})
    assert api_client.get(f"/v1/jobs/{job['id']}/weights", params={"epoch": 0}).status_code == 422


def test_health_and_readiness(api_client: TestClient) -> None:
    assert api_client.get("/healthz").json() == {"status": "ok"}
    assert api_client.get("/readyz").json() == {"status": "ok", "database": "ok", "broker": "ok", "store": "ok"}
