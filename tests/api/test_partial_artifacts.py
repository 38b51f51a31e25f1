"""A job that stopped before training finished serves the weights of its last checkpoint, marked as
partial with their epoch, through /artifact, /predict and the job itself; a job that never trained
has none. The job runs in this process (the runner against the app's own database)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from safetensors import safe_open
from sklearn.datasets import load_iris

from api.services.inference import load_artifact, predict
from tests.support.servers import wait_until
from worker import runner

LONG = {
    "dataset": "builtin:iris",
    "model": {"type": "mlp", "hidden_layers": [8]},
    "training": {"epochs": 500, "batch_size": 1},
}


def run_until_canceled(api_client: TestClient, job_id: str) -> None:
    """Runs the job here and cancels it through the API once it has finished an epoch."""

    def cancel_after_first_epoch() -> None:
        wait_until(
            lambda: api_client.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 1,
            timeout=60,
            interval=0.05,
            what="an epoch",
        )
        assert api_client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202

    watcher = threading.Thread(target=cancel_after_first_epoch)
    watcher.start()
    runner.run_job(job_id)
    watcher.join()


@pytest.fixture
def canceled(api_client: TestClient) -> dict[str, object]:
    job_id = api_client.post("/v1/jobs", json=LONG).json()["id"]
    run_until_canceled(api_client, job_id)
    job = api_client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "canceled"
    return dict(job)


def test_a_canceled_job_serves_its_last_weights_marked_partial(
    api_client: TestClient, canceled: dict[str, object], tmp_path: Path
) -> None:
    job_id, artifact = canceled["id"], canceled["artifact"]
    assert isinstance(artifact, dict) and artifact["partial"] is True
    epoch = artifact["epoch"]
    assert isinstance(epoch, int) and 1 <= epoch == canceled["progress"]["epoch"] < 500  # type: ignore[index]

    response = api_client.get(f"/v1/jobs/{job_id}/artifact")
    assert response.status_code == 200
    assert (response.headers["X-Regtrain-Partial"], response.headers["X-Regtrain-Epoch"]) == ("true", str(epoch))
    downloaded = tmp_path / "partial.safetensors"
    downloaded.write_bytes(response.content)
    with safe_open(str(downloaded), framework="np") as stored:
        metadata = stored.metadata()
        names = set(stored.keys())
    assert (metadata["partial"], metadata["epoch"]) == ("true", str(epoch))
    assert names == {"hidden.0.linear.weight", "hidden.0.linear.bias", "output.weight", "output.bias"}

    rows = load_iris().data[:20]
    body = api_client.post(f"/v1/jobs/{job_id}/predict", json={"rows": rows.tolist()}).json()
    assert body["partial"] == {"epoch": epoch}
    expected = predict(load_artifact(downloaded), rows)
    assert body["predictions"] == expected["predictions"] and body["classes"] == [0, 1, 2]
    np.testing.assert_allclose(body["probabilities"], expected["probabilities"], rtol=1e-12)


def test_a_complete_jobs_predictions_carry_no_partial_mark(api_client: TestClient) -> None:
    job_id = api_client.post("/v1/jobs", json={**LONG, "training": {"epochs": 3}}).json()["id"]
    runner.run_job(job_id)
    job = api_client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["artifact"], job["error"]) == ("succeeded", {"partial": False, "epoch": 3}, None)
    response = api_client.get(f"/v1/jobs/{job_id}/artifact")
    assert (response.headers["X-Regtrain-Partial"], response.headers["X-Regtrain-Epoch"]) == ("false", "3")
    body = api_client.post(f"/v1/jobs/{job_id}/predict", json={"rows": load_iris().data[:3].tolist()}).json()
    assert set(body) == {"predictions", "probabilities", "classes"}


def test_a_job_canceled_before_it_ran_has_no_weights(api_client: TestClient) -> None:
    job_id = api_client.post("/v1/jobs", json=LONG).json()["id"]
    canceled = api_client.post(f"/v1/jobs/{job_id}/cancel").json()
    assert (canceled["status"], canceled["artifact"]) == ("canceled", None)
    detail = (
        f"Job {job_id} is canceled and kept no weights: it stopped before finishing an epoch, or its last weights "
        "were not finite."
    )
    for response in (
        api_client.get(f"/v1/jobs/{job_id}/artifact"),
        api_client.post(f"/v1/jobs/{job_id}/predict", json={"rows": [[0.0] * 4]}),
    ):
        assert response.status_code == 409
        assert response.json() == {"detail": detail, "error": "Conflict"}


def test_a_queued_job_has_no_weights_yet(api_client: TestClient) -> None:
    job_id = api_client.post("/v1/jobs", json=LONG).json()["id"]
    response = api_client.get(f"/v1/jobs/{job_id}/artifact")
    assert response.status_code == 409
    assert response.json()["detail"].startswith(f"Job {job_id} is queued; it has trained weights once it has")
