"""The training result is one typed structure: what the engine computes (worker/training/results.py)
is what the API schema (api/schemas/job.py, JobResult) carries, field for field, at every depth; and
a trained job's result comes back over HTTP exactly as the worker stored it."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Union

from fastapi.testclient import TestClient

from api.schemas.job import JobResult
from core.db import get_session_factory
from models import Job
from worker import runner
from worker.training.results import TrainingResult

Tree = dict[str, Any]  # field name -> its own fields (a Tree), or None for a plain value


def dataclass_fields(cls: type) -> Tree:
    hints = typing.get_type_hints(cls)
    tree: Tree = {}
    for field in dataclasses.fields(cls):
        tree[field.name] = _dataclass_value(hints[field.name])
    return tree


def _dataclass_value(hint: Any) -> Tree | None:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return dataclass_fields(hint)
    if typing.get_origin(hint) in (Union, types.UnionType, list):
        inner = [_dataclass_value(arg) for arg in typing.get_args(hint) if arg is not type(None)]
        nested = [tree for tree in inner if tree is not None]
        return nested[0] if nested else None
    return None


def schema_fields(schema: dict[str, Any], node: dict[str, Any]) -> Tree | None:
    if "$ref" in node:
        return schema_fields(schema, schema["$defs"][node["$ref"].rsplit("/", 1)[1]])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in node:
            nested = [tree for option in node[key] if (tree := schema_fields(schema, option)) is not None]
            return nested[0] if nested else None
    if node.get("type") == "array" and "items" in node:
        return schema_fields(schema, node["items"])
    if "properties" in node:
        return {name: schema_fields(schema, child) for name, child in node["properties"].items()}
    return None


def test_the_api_result_schema_carries_every_field_the_engine_computes() -> None:
    schema = JobResult.model_json_schema(mode="serialization")
    api = schema_fields(schema, schema)
    engine = dataclass_fields(TrainingResult)
    assert api == engine
    assert api is not None and set(api["timing"]) == {"steps_seconds", "evaluation_seconds", "reporting_seconds"}


def test_a_trained_jobs_result_is_served_exactly_as_stored(api_client: TestClient) -> None:
    body = {"dataset": "builtin:iris", "training": {"epochs": 2, "validation_fraction": 0.2, "test_fraction": 0.2}}
    job_id = api_client.post("/v1/jobs", json=body).json()["id"]
    runner.run_job(job_id)
    with get_session_factory()() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.result is not None
        stored = job.result
    served = api_client.get(f"/v1/jobs/{job_id}").json()
    assert served["status"] == "succeeded"
    assert served["result"] == stored
    result = served["result"]
    assert set(result["timing"]) == {"steps_seconds", "evaluation_seconds", "reporting_seconds"}
    assert all(seconds > 0 for seconds in result["timing"].values())
    classification = {"data_loss", "accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"}
    classification.add("confusion_matrix")
    assert set(result["train"]) == classification | {"l1_penalty", "l2_penalty"}
    assert set(result["validation"]) == set(result["test"]) == classification
    # Iris has three classes: rows are the true class, columns the predicted one.
    matrix = result["test"]["confusion_matrix"]
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    assert sum(map(sum, matrix)) == 30
    assert set(result) == set(dataclass_fields(TrainingResult))
