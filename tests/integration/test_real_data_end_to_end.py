"""Ordinary CSV exports trained by a real worker, on both stacks: "NA" cells are missing numbers (not
categories), an id column is left out with a warning, and predictions take records without it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.support.files import csv_bytes
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
MODEL = {"type": "mlp", "hidden_layers": [64]}


def upload(stack: Stack, content: bytes, name: str, **fields: str) -> dict[str, Any]:
    response = stack.client.post("/v1/datasets", data={"name": name, **fields}, files={"file": ("data.csv", content)})
    assert response.status_code == 201, response.text
    return dict(response.json())


def first_layer_shape(stack: Stack, job_id: str) -> list[int]:
    return list(stack.client.get(f"/v1/jobs/{job_id}/weights").json()["layers"][0]["shape"])


def test_na_cells_are_missing_numbers_not_categories(stack: Stack) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=100), rng.normal(size=100)
    rows = [
        ["NA" if i % 10 == 0 else round(float(a[i]), 4), round(float(b[i]), 4), int(a[i] + b[i] > 0)]
        for i in range(100)
    ]
    dataset = upload(stack, csv_bytes(["a", "b", "y"], rows), "exported", target="y")
    column_a = dataset["columns"][0]
    assert (column_a["dtype"], column_a["missing"], column_a["role"]) == ("float64", 10, "feature")
    job = stack.submit({"dataset": "exported@latest", "model": MODEL, "training": {"epochs": 3, "missing": "mean"}})
    assert job["spec"]["features"] == ["a", "b"] and job["warnings"] == []
    done = stack.wait_for(job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert first_layer_shape(stack, job["id"]) == [64, 2]


def test_an_id_column_is_left_out_and_not_needed_to_predict(stack: Stack) -> None:
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=300), rng.normal(size=300)
    plans = ["basic", "pro", "team"]
    rows = [
        [f"C{i:05d}", round(float(x1[i]), 4), plans[i % 3], round(float(x2[i]), 4), int(x1[i] - x2[i] > 0)]
        for i in range(300)
    ]
    header = ["customer_id", "x1", "plan", "x2", "churned"]
    dataset = upload(stack, csv_bytes(header, rows), "customers", target="churned")
    assert dataset["columns"][0]["role"] == "id"
    job = stack.submit(
        {
            "dataset": "customers@latest",
            "model": MODEL,
            "optimizer": {"type": "adam", "lr": 0.05},
            "training": {"epochs": 10},
        }
    )
    assert job["spec"]["features"] == ["x1", "plan", "x2"]
    assert job["warnings"] == [
        "Column 'customer_id' is unique per row (an id), so this job leaves it out; list it in `features` to use it."
    ]
    done = stack.wait_for(job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["warnings"] == job["warnings"]
    # x1, plan one-hot (3) and x2: 5 features, not 305.
    assert first_layer_shape(stack, job["id"]) == [64, 5]

    records = [{"x1": 2.0, "plan": "pro", "x2": -2.0}, {"x1": -2.0, "plan": "basic", "x2": 2.0}]
    predicted = stack.client.post(f"/v1/jobs/{job['id']}/predict", json={"records": records})
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["predictions"] == [1, 0]
    # Whole rows of the table (id and target included) are accepted: keys that are not features are ignored.
    whole = [dict(zip(header, row, strict=True)) for row in rows[:5]]
    assert stack.client.post(f"/v1/jobs/{job['id']}/predict", json={"records": whole}).status_code == 200
    lacking = stack.client.post(f"/v1/jobs/{job['id']}/predict", json={"records": [{"x1": 1.0, "plan": "pro"}]})
    assert lacking.status_code == 422 and "Record 0 lacks 'x2'" in lacking.json()["detail"]
    rows_body = stack.client.post(f"/v1/jobs/{job['id']}/predict", json={"rows": [[1.0, 2.0, 3.0, 4.0]]})
    assert rows_body.status_code == 422 and "Each row needs 3 values" in rows_body.json()["detail"]
