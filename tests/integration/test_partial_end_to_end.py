"""A job canceled while a real worker trains it keeps the weights of its last finished epoch: they
download marked as partial, with their epoch, and predict. On both stacks."""

from __future__ import annotations

from typing import Any

import pytest
from safetensors import safe_open
from sklearn.datasets import load_iris

from tests.support.servers import wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

# Thousands of epochs of one-row steps: still running when the test cancels it after its first epoch.
LONG = {
    "dataset": "builtin:iris",
    "model": {"type": "mlp", "hidden_layers": [8]},
    "training": {"epochs": 5000, "batch_size": 1},
}


def test_a_job_canceled_after_an_epoch_serves_partial_weights(stack: Stack, tmp_path: Any) -> None:
    job_id = stack.submit(LONG)["id"]
    stack.wait_for(job_id, {"running"})
    wait_until(
        lambda: stack.client.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 1,
        timeout=60,
        interval=0.1,
        what="an epoch",
    )
    assert stack.client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202

    # The worker notices the cancel at its next heartbeat and then records the weights it kept.
    job = wait_until(
        lambda: (body := stack.client.get(f"/v1/jobs/{job_id}").json())["artifact"] and body,
        timeout=30,
        interval=0.1,
        what="the partial artifact",
    )
    assert job["status"] == "canceled" and job["result"] is None
    epoch = job["artifact"]["epoch"]
    assert job["artifact"] == {"partial": True, "epoch": epoch} and 1 <= epoch < 5000

    response = stack.client.get(f"/v1/jobs/{job_id}/artifact")
    assert response.status_code == 200
    assert (response.headers["x-regtrain-partial"], response.headers["x-regtrain-epoch"]) == ("true", str(epoch))
    path = tmp_path / "partial.safetensors"
    path.write_bytes(response.content)
    with safe_open(str(path), framework="np") as stored:
        assert (stored.metadata()["partial"], stored.metadata()["epoch"]) == ("true", str(epoch))

    iris = load_iris()
    predicted = stack.client.post(f"/v1/jobs/{job_id}/predict", json={"rows": iris.data.tolist()})
    assert predicted.status_code == 200
    body = predicted.json()
    assert body["partial"] == {"epoch": epoch} and len(body["predictions"]) == 150
    assert set(body["predictions"]) <= {0, 1, 2}
