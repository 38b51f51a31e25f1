"""Swagger UI is the manual for people: every field explained, and an example that runs as is."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from api.schemas.job import EXAMPLE_JOB, JobCreate


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    return resolve(schema, schema["components"]["schemas"][ref.rsplit("/", 1)[1]]) if ref else node


def test_every_request_field_has_a_description(api_client: TestClient) -> None:
    schema = api_client.get("/openapi.json").json()
    undocumented = []
    for name in (
        "JobCreate",
        "ModelSpec",
        "RegularizationSpec",
        "ElasticNetSpec",
        "OptimizerSpec",
        "TrainingSpec",
        "EarlyStoppingSpec",
    ):
        for field, node in schema["components"]["schemas"][name]["properties"].items():
            if "$ref" not in node and not node.get("description"):
                undocumented.append(f"{name}.{field}")
    assert undocumented == []


def test_regularization_descriptions_state_the_objective(api_client: TestClient) -> None:
    properties = api_client.get("/openapi.json").json()["components"]["schemas"]["RegularizationSpec"]["properties"]
    assert "l1 * sum|w| + (l2 / 2) * sum w^2" in properties["l1"]["description"]
    assert "(l2 / 2) * sum w^2" in properties["l2"]["description"]
    assert "l1 = alpha * l1_ratio" in properties["elastic_net"]["description"]


def test_the_example_is_a_valid_job_on_builtin_wine(api_client: TestClient) -> None:
    schema = api_client.get("/openapi.json").json()
    examples = schema["components"]["schemas"]["JobCreate"]["examples"]
    assert examples == [EXAMPLE_JOB]
    assert JobCreate.model_validate(examples[0]).dataset == "builtin:wine"
    response = api_client.post("/v1/jobs", json=examples[0])
    assert response.status_code == 201


def test_docs_page_is_served(api_client: TestClient) -> None:
    response = api_client.get("/docs")
    assert response.status_code == 200
    assert "swagger-ui" in response.text
