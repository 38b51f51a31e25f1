"""A job submitted over HTTP is trained by a real worker process and its results read back, on both
the embedded stack (SQLite + SQLite broker) and the distributed one (PostgreSQL + Redis)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api.schemas.job import EXAMPLE_JOB
from tests.support.plots import Svg, png
from tests.support.servers import wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

EPOCH_KEYS = {
    "epoch",
    "train_data_loss",
    "l1_penalty",
    "l2_penalty",
    "val_data_loss",
    "l1_norm",
    "l2_norm",
    "zero_fraction",
    "lr",
    "seconds",
}
LAYER_KEYS = {
    "name",
    "penalized",
    "shape",
    "count",
    "l1_norm",
    "l2_norm",
    "max_abs",
    "mean",
    "std",
    "zero_fraction",
    "near_zero_fraction",
    "dead_units",
    "spectral_norm",
    "histogram",
}


def no_nan(text: str) -> object:
    """Parse JSON the strict way: NaN or Infinity in a response is a defect."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"response contains {constant}")

    return json.loads(text, parse_constant=refuse)


def test_example_job_succeeds_and_its_results_read_back(stack: Stack) -> None:
    started = time.monotonic()
    job = stack.submit(EXAMPLE_JOB)
    assert job["status"] == "queued"
    assert job["dataset"]["id"] == "builtin:wine" and len(job["dataset"]["sha256"]) == 64
    # The stored spec is normalized: elastic net resolved, defaults filled in.
    regularization = job["spec"]["regularization"]
    assert regularization["l1"] == pytest.approx(0.0005) and regularization["l2"] == pytest.approx(0.0005)
    assert job["spec"]["training"]["standardize"] is True

    done = stack.wait_for(job["id"])
    elapsed = time.monotonic() - started
    print(f"\n[{stack.home.name}] POST to succeeded: {elapsed:.2f} s")
    assert done["status"] == "succeeded", stack.logs()
    assert done["attempts"] == 1
    assert done["progress"] == {"epoch": 20, "epochs": 20}
    result = done["result"]
    assert result["epochs_run"] == 20
    classification = {"data_loss", "accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"}
    classification.add("confusion_matrix")
    assert set(result["train"]) == classification | {"l1_penalty", "l2_penalty"}
    assert set(result["validation"]) == classification
    # Wine is easy: a trained MLP beats the 40% majority class by a wide margin.
    assert result["validation"]["accuracy"] > 0.8
    assert [t["name"] for t in result["penalized"]] == ["hidden.0.linear.weight", "output.weight"]
    assert done["started_at"] <= done["finished_at"]

    metrics = stack.client.get(f"/v1/jobs/{job['id']}/metrics")
    epochs = metrics.json()["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, 21))
    assert set(epochs[0]) == EPOCH_KEYS | {"val_accuracy"}
    assert epochs[-1]["train_data_loss"] < epochs[0]["train_data_loss"]
    # The L1 and L2 terms are the penalties' values, reported apart from the data loss.
    assert epochs[-1]["l1_penalty"] == pytest.approx(0.0005 * epochs[-1]["l1_norm"], rel=1e-6)
    assert epochs[-1]["l2_penalty"] == pytest.approx(0.0005 / 2 * epochs[-1]["l2_norm"] ** 2, rel=1e-6)

    weights = stack.client.get(f"/v1/jobs/{job['id']}/weights")
    assert weights.status_code == 200
    body = no_nan(weights.text)
    assert isinstance(body, dict)
    # The weights served by default are the artifact's: the best epoch's, under early stopping.
    assert body["epoch"] == result["weights_epoch"] and body["epochs_recorded"] == list(range(1, 21))
    layers = {layer["name"]: layer for layer in body["layers"]}
    assert set(layers) == {"hidden.0.linear.weight", "hidden.0.linear.bias", "output.weight", "output.bias"}
    hidden = layers["hidden.0.linear.weight"]
    assert set(hidden) == LAYER_KEYS
    assert hidden["shape"] == [32, 13] and hidden["count"] == 416
    assert sum(hidden["histogram"]["counts"]) == 416
    assert layers["output.bias"]["penalized"] is False and layers["output.bias"]["spectral_norm"] is None
    penalized = [layers["hidden.0.linear.weight"], layers["output.weight"]]
    assert body["total"]["count"] == sum(layer["count"] for layer in penalized)
    assert body["total"]["l1_norm"] == pytest.approx(sum(layer["l1_norm"] for layer in penalized))
    assert body["total"]["l2_norm"] == pytest.approx(math.sqrt(sum(layer["l2_norm"] ** 2 for layer in penalized)))
    assert result["weights"]["l1_norm"] == pytest.approx(body["total"]["l1_norm"])

    first = stack.client.get(f"/v1/jobs/{job['id']}/weights", params={"epoch": 1}).json()
    assert first["epoch"] == 1
    # Edges are fixed at the first epoch so histograms of different epochs compare.
    first_hidden = next(layer for layer in first["layers"] if layer["name"] == "hidden.0.linear.weight")
    assert first_hidden["histogram"]["edges"] == hidden["histogram"]["edges"]

    missing = stack.client.get(f"/v1/jobs/{job['id']}/weights", params={"epoch": 21})
    assert missing.status_code == 404
    assert "epoch 21" in missing.json()["detail"]

    # The API's plots of these records: training and validation loss at each of the 20 epochs, and a
    # histogram of each tensor.
    curves = Svg.parse(stack.client.get(f"/v1/jobs/{job['id']}/plots/learning_curves.svg").content)
    assert curves.series() == ["series-training", "series-validation"] and curves.markers("series-training") == 20
    histograms = stack.client.get(f"/v1/jobs/{job['id']}/plots/weights.png")
    assert histograms.headers["content-type"] == "image/png" and png(histograms.content)[1] > 0


def test_regression_job_reports_r2_and_rmse(stack: Stack) -> None:
    job = stack.submit(
        {
            "dataset": "builtin:diabetes",
            "model": {"type": "linear"},
            "optimizer": {"type": "sgd", "lr": 0.05},
            "training": {"epochs": 30, "batch_size": 32},
        }
    )
    assert job["task"] == "regression"
    done = stack.wait_for(job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert set(done["result"]["validation"]) == {"data_loss", "r2", "rmse", "mae"}
    # A linear model explains roughly half the variance of diabetes progression.
    assert done["result"]["validation"]["r2"] > 0.3
    epochs = stack.client.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    assert set(epochs[0]) == EPOCH_KEYS | {"val_r2", "val_rmse"}


def test_cancel_stops_a_running_job_and_a_queued_one_never_starts(stack: Stack) -> None:
    long_job = stack.submit(
        {
            "dataset": "builtin:digits",
            "model": {"type": "mlp", "hidden_layers": [256, 256]},
            "training": {"epochs": 5000, "batch_size": 16},
        }
    )
    queued = stack.submit({"dataset": "builtin:iris", "training": {"epochs": 5}})
    stack.wait_for(long_job["id"], {"running"}, timeout=60)
    wait_until(
        lambda: stack.client.get(f"/v1/jobs/{long_job['id']}").json()["progress"]["epoch"] >= 1,
        timeout=60,
        what="the first epoch",
    )

    # One worker with concurrency 1 is busy, so the second job is still queued: canceled at once.
    response = stack.client.post(f"/v1/jobs/{queued['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "canceled"

    asked = time.monotonic()
    response = stack.client.post(f"/v1/jobs/{long_job['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "canceled"

    # The worker notices within its heartbeat and stops writing: the recorded epochs stop growing.
    def settled() -> bool:
        before = len(stack.client.get(f"/v1/jobs/{long_job['id']}/metrics").json()["epochs"])
        time.sleep(1.5)
        return before == len(stack.client.get(f"/v1/jobs/{long_job['id']}/metrics").json()["epochs"])

    wait_until(settled, timeout=15, what="the canceled job to stop recording epochs")
    print(f"\n[{stack.home.name}] cancel to stop: under {time.monotonic() - asked:.1f} s")
    recorded = stack.client.get(f"/v1/jobs/{long_job['id']}/metrics").json()["epochs"]
    assert 1 <= len(recorded) < 5000
    final = stack.client.get(f"/v1/jobs/{long_job['id']}").json()
    assert final["status"] == "canceled" and final["error"]["type"] == "canceled" and final["result"] is None

    again = stack.client.post(f"/v1/jobs/{long_job['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"] == "Conflict"

    # The canceled queued job is never trained, even though its message is still delivered.
    later = stack.submit({"dataset": "builtin:iris", "training": {"epochs": 2}})
    assert stack.wait_for(later["id"])["status"] == "succeeded"
    untouched = stack.client.get(f"/v1/jobs/{queued['id']}").json()
    assert untouched["status"] == "canceled" and untouched["attempts"] == 0 and untouched["started_at"] is None


def test_a_diverging_job_fails_with_the_epoch_and_no_nan(stack: Stack) -> None:
    job = stack.submit(
        {
            "dataset": "builtin:diabetes",
            "model": {"type": "linear"},
            "optimizer": {"type": "sgd", "lr": 10.0},
            "training": {"epochs": 50, "standardize": False},
        }
    )
    done = stack.wait_for(job["id"])
    assert done["status"] == "failed"
    assert done["error"]["type"] == "diverged"
    assert "epoch 1" in done["error"]["message"]
    no_nan(stack.client.get(f"/v1/jobs/{job['id']}").text)
    no_nan(stack.client.get(f"/v1/jobs/{job['id']}/metrics").text)


def test_listing_is_newest_first_and_filters_by_status(stack: Stack) -> None:
    first = stack.submit({"dataset": "builtin:iris", "training": {"epochs": 1}})
    second = stack.submit({"dataset": "builtin:iris", "training": {"epochs": 1}})
    stack.wait_for(second["id"])
    stack.wait_for(first["id"])
    page = stack.client.get("/v1/jobs", params={"limit": 2}).json()
    assert [job["id"] for job in page["items"]] == [second["id"], first["id"]]
    assert page["limit"] == 2 and page["total"] >= 2
    succeeded = stack.client.get("/v1/jobs", params={"status": "succeeded", "limit": 500}).json()
    assert succeeded["items"] and all(job["status"] == "succeeded" for job in succeeded["items"])
    assert succeeded["total"] == len(succeeded["items"])


def test_cli_submit_follow_prints_each_epoch_and_the_result(stack: Stack, tmp_path: Path) -> None:
    spec = tmp_path / "job.json"
    spec.write_text(
        json.dumps({"dataset": "builtin:breast_cancer", "model": {"type": "linear"}, "training": {"epochs": 3}})
    )
    completed = subprocess.run(
        [sys.executable, "-m", "cli.main", "submit", str(spec), "--follow"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/3", "2/3", "3/3"]
    assert any(line.endswith(" succeeded") for line in lines)
    # The result's metrics as a table: a header naming them, a row per split.
    header = next(line for line in lines if line.split()[:2] == ["data_loss", "accuracy"])
    assert "log_loss" in header and "roc_auc" in header
    assert any(line.startswith("validation ") for line in lines)
