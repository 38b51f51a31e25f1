"""Uploaded and generated datasets trained by a real worker, on both stacks: text columns one-hot
encoded, text labels predicted back, missing values handled as the job says, images to a cnn, and the
correlated groups where the lasso and the elastic net part ways."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.support.files import csv_bytes, iris_like, npz_bytes
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def upload(stack: Stack, content: bytes, name: str, filename: str = "data.csv", **fields: str) -> dict[str, Any]:
    response = stack.client.post("/v1/datasets", data={"name": name, **fields}, files={"file": (filename, content)})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_text_features_and_labels_train_and_predict(stack: Stack) -> None:
    header, rows = iris_like(n=90)
    upload(stack, csv_bytes(header, rows), "flowers", target="species")
    job = stack.submit(
        {
            "dataset": "flowers@latest",
            "model": {"type": "mlp", "hidden_layers": [16]},
            "optimizer": {"type": "adam", "lr": 0.05},
            "training": {"epochs": 30, "batch_size": 16},
        }
    )
    done = stack.wait_for(job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["validation"]["accuracy"] > 0.9
    layers = stack.client.get(f"/v1/jobs/{job['id']}/weights").json()["layers"]
    # length, width, and colour one-hot as two features.
    assert layers[0]["shape"] == [16, 4]

    records = [dict(zip(header[:3], row[:3], strict=True)) for row in rows[:12]]
    predicted = stack.client.post(f"/v1/jobs/{job['id']}/predict", json={"records": records})
    assert predicted.status_code == 200, predicted.text
    body = predicted.json()
    assert body["classes"] == ["setosa", "versicolor", "virginica"]
    assert np.mean([p == row[3] for p, row in zip(body["predictions"], rows[:12], strict=True)]) > 0.9
    unseen = stack.client.post(
        f"/v1/jobs/{job['id']}/predict", json={"records": [{"length": 1.0, "width": 0.5, "colour": "green"}]}
    )
    assert unseen.status_code == 200, "an unseen category encodes as all zeros"
    needs_records = stack.client.post(f"/v1/jobs/{job['id']}/predict", json={"rows": [[1.0, 0.5, 0.0]]})
    assert needs_records.status_code == 422 and "send `records`" in needs_records.text
    refused = stack.client.post(
        f"/v1/jobs/{job['id']}/predict", json={"records": [{"length": None, "width": 0.5, "colour": "red"}]}
    )
    assert refused.status_code == 422 and "training.missing" in refused.text


def test_missing_values_filled_with_training_means(stack: Stack) -> None:
    header, rows = iris_like(n=90, seed=1)
    for i in range(0, 90, 9):
        rows[i][0] = None
    rows[5][3] = None
    upload(stack, csv_bytes(header, rows), "gappy", target="species")
    job = stack.submit({"dataset": "gappy@latest", "training": {"epochs": 5, "missing": "mean"}})
    done = stack.wait_for(job["id"])
    assert done["status"] == "succeeded", done["error"]
    filled = stack.client.post(
        f"/v1/jobs/{job['id']}/predict", json={"records": [{"length": None, "width": 2.5, "colour": "red"}]}
    )
    assert filled.status_code == 200, filled.text

    dropped = stack.submit({"dataset": "gappy@latest", "training": {"epochs": 2, "missing": "drop"}})
    assert stack.wait_for(dropped["id"])["status"] == "succeeded"


def test_image_arrays_train_a_cnn(stack: Stack) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(120) % 2
    X = rng.normal(0, 1, (120, 8, 8))
    X[y == 1, 2:6, 2:6] += 3.0  # a bright square marks class 1
    upload(stack, npz_bytes(X=X, y=y), "squares", filename="squares.npz")
    job = stack.submit(
        {
            "dataset": "squares@latest",
            "model": {"type": "cnn", "channels": [4], "hidden_layers": [8]},
            "optimizer": {"type": "adam", "lr": 0.01},
            "training": {"epochs": 15, "batch_size": 16},
        }
    )
    done = stack.wait_for(job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["validation"]["accuracy"] > 0.9


def test_lasso_and_elastic_net_part_ways_on_a_correlated_group(stack: Stack) -> None:
    response = stack.client.post(
        "/v1/datasets/synthetic",
        json={
            "name": "grouped",
            "task": "regression",
            "n_samples": 400,
            "n_features": 12,
            "n_informative": 1,
            "groups": [{"size": 5, "correlation": 0.95}],
            "noise": 0.5,
            "seed": 1,
        },
    )
    assert response.status_code == 201, response.text

    def group_weights(regularization: dict[str, Any]) -> np.ndarray:
        job = stack.submit(
            {
                "dataset": "grouped@latest",
                "model": {"type": "linear"},
                "regularization": regularization,
                "optimizer": {"type": "sgd", "lr": 0.1},
                "training": {"epochs": 400, "batch_size": None, "validation_fraction": 0.0},
            }
        )
        done = stack.wait_for(job["id"], timeout=120)
        assert done["status"] == "succeeded", done["error"]
        artifact = stack.client.get(f"/v1/jobs/{job['id']}/artifact").content
        from safetensors.numpy import load

        return load(artifact)["linear.weight"].ravel()[1:6]

    # scikit-learn on these data at alpha 1: the lasso keeps one of the five, the elastic net all of them.
    lasso = group_weights({"elastic_net": {"alpha": 1.0, "l1_ratio": 1.0}})
    mixed = group_weights({"elastic_net": {"alpha": 1.0, "l1_ratio": 0.2}})
    assert np.count_nonzero(lasso) <= 2, "the lasso keeps few of a correlated group, with exact zeros"
    assert np.count_nonzero(mixed) == 5, "the elastic net spreads the weight over the whole group"
