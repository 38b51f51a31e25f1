"""The trained weights come back as a safetensors artifact; every statistic served about them can be
recomputed from that artifact; predictions use them. On both stacks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from safetensors import safe_open
from sklearn.datasets import load_breast_cancer

from tests.support.stack import Stack

pytestmark = pytest.mark.integration

JOB = {
    "dataset": "builtin:breast_cancer",
    "model": {"type": "mlp", "hidden_layers": [16, 8], "activation": "tanh"},
    "regularization": {"l1": 0.05, "l1_method": "proximal", "l2": 1e-4, "max_norm": 3.0},
    "optimizer": {"type": "adamw", "lr": 0.01},
    "training": {"epochs": 8, "batch_size": 32, "test_fraction": 0.2},
}


@pytest.fixture(scope="module")
def trained(stack: Stack) -> dict[str, object]:
    job = stack.submit(JOB)
    done = stack.wait_for(job["id"])
    assert done["status"] == "succeeded", done["error"]
    return done


def test_served_statistics_equal_those_recomputed_from_the_artifact(
    stack: Stack, trained: dict[str, object], tmp_path: object
) -> None:
    job_id = trained["id"]
    response = stack.client.get(f"/v1/jobs/{job_id}/artifact")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    path = f"{tmp_path}/artifact.safetensors"
    with open(path, "wb") as file:
        file.write(response.content)
    with safe_open(path, framework="np") as artifact:
        metadata = artifact.metadata()
        tensors = {name: artifact.get_tensor(name).astype(np.float64) for name in artifact.keys()}  # noqa: SIM118
    assert json.loads(metadata["spec"]) == trained["spec"]
    assert len(json.loads(metadata["feature_names"])) == 30
    assert json.loads(metadata["class_labels"]) == [0, 1]
    assert len(json.loads(metadata["standardization"])["mean"]) == 30

    weights = stack.client.get(f"/v1/jobs/{job_id}/weights").json()
    layers = weights["layers"]
    # Tensor names in the artifact are the layer names of /weights (the artifact also holds buffers).
    assert {layer["name"] for layer in layers} == set(tensors)
    for layer in layers:
        w = tensors[layer["name"]]
        assert layer["shape"] == list(w.shape) and layer["count"] == w.size
        assert layer["l1_norm"] == pytest.approx(np.abs(w).sum(), rel=1e-12)
        assert layer["l2_norm"] == pytest.approx(math.sqrt(np.square(w).sum()), rel=1e-12)
        assert layer["max_abs"] == pytest.approx(np.abs(w).max(), rel=1e-12)
        assert layer["mean"] == pytest.approx(w.mean(), rel=1e-9, abs=1e-15)
        assert layer["std"] == pytest.approx(w.std(), rel=1e-9)
        assert layer["zero_fraction"] == np.count_nonzero(w == 0) / w.size
        assert layer["near_zero_fraction"] == np.count_nonzero(np.abs(w) < 1e-3) / w.size
        if w.ndim >= 2:
            units = w.reshape(w.shape[0], -1)
            assert layer["dead_units"] == int(np.count_nonzero(np.abs(units).sum(axis=1) == 0))
            assert layer["spectral_norm"] == pytest.approx(np.linalg.norm(units, 2), rel=1e-9)
            # max_norm = 3 caps every unit's incoming weights.
            assert np.linalg.norm(units, axis=1).max() <= 3.0 + 1e-5
        else:
            assert layer["dead_units"] is None and layer["spectral_norm"] is None
        edges = layer["histogram"]["edges"]
        counts, _ = np.histogram(np.clip(w, edges[0], edges[-1]), bins=len(edges) - 1, range=(edges[0], edges[-1]))
        assert sum(layer["histogram"]["counts"]) == w.size
        assert np.abs(np.asarray(layer["histogram"]["counts"]) - counts).sum() <= 2, "bin edges may round apart"

    penalized = [tensors[layer["name"]] for layer in layers if layer["penalized"]]
    total = weights["total"]
    assert total["count"] == sum(w.size for w in penalized)
    assert total["zero_fraction"] == sum(np.count_nonzero(w == 0) for w in penalized) / total["count"]
    # Proximal L1 gives exact zeros, and they are real: the reported sparsity is the artifact's.
    assert total["zero_fraction"] > 0
    assert trained["result"]["weights"]["zero_fraction"] == total["zero_fraction"]  # type: ignore[index]
    metrics = {"data_loss", "accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc", "confusion_matrix"}
    assert set(trained["result"]["test"]) == metrics  # type: ignore[index]


def test_predictions_from_rows_and_records(stack: Stack, trained: dict[str, object]) -> None:
    data = load_breast_cancer()
    rows = data.data[:200].tolist()
    response = stack.client.post(f"/v1/jobs/{trained['id']}/predict", json={"rows": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["classes"] == [0, 1]
    accuracy = np.mean(np.asarray(body["predictions"]) == data.target[:200])
    assert accuracy > 0.9
    assert np.allclose(np.sum(body["probabilities"], axis=1), 1.0)

    records = [dict(zip(data.feature_names, row, strict=True)) for row in rows[:5]]
    by_name = stack.client.post(f"/v1/jobs/{trained['id']}/predict", json={"records": records}).json()
    assert by_name["predictions"] == body["predictions"][:5]


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"rows": [[1.0, 2.0]]}, "Each row needs 30 values"),
        ({"records": [{"mean radius": 1.0}]}, "Record 0 lacks 'mean texture'"),
        ({"rows": [[0.0] * 30], "records": [{}]}, "give either rows or records"),
        ({"rows": []}, "give at least one row"),
    ],
)
def test_bad_prediction_requests_are_422(
    stack: Stack, trained: dict[str, object], body: dict[str, object], phrase: str
) -> None:
    response = stack.client.post(f"/v1/jobs/{trained['id']}/predict", json=body)
    assert response.status_code == 422
    assert phrase in response.text


def test_unfinished_or_failed_jobs_have_no_artifact(stack: Stack) -> None:
    failed = stack.submit(
        {
            "dataset": "builtin:diabetes",
            "model": {"type": "linear"},
            "optimizer": {"lr": 10.0},
            "training": {"epochs": 5, "standardize": False},
        }
    )
    assert stack.wait_for(failed["id"])["status"] == "failed"
    for response in (
        stack.client.get(f"/v1/jobs/{failed['id']}/artifact"),
        stack.client.post(f"/v1/jobs/{failed['id']}/predict", json={"rows": [[0.0] * 10]}),
    ):
        assert response.status_code == 409
        assert response.json() == {
            "detail": f"Job {failed['id']} is failed and kept no weights: it stopped before finishing an epoch, "
            "or its last weights were not finite.",
            "error": "Conflict",
        }
    assert stack.client.get("/v1/jobs/nope/artifact").status_code == 404
