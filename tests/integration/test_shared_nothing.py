"""Hosts that share nothing but PostgreSQL, Redis and the S3 object store: the API, two workers and the
scheduler each have a REGTRAIN_HOME of their own. The worker training a job is killed (SIGKILL)
mid-epoch; once its lease expires the scheduler requeues the job and the other worker, which never saw
the first one's disk, resumes it from the checkpoint in the store. The weights it ends with equal an
uninterrupted run's bit for bit, and the API serves them from the store."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load as load_safetensors
from sklearn.datasets import load_digits

from tests.support.files import csv_bytes
from tests.support.s3 import BUCKET, SeaweedFS
from tests.support.servers import wait_until
from tests.support.sse import parse
from tests.support.stack import Stack, start_stack

pytestmark = pytest.mark.integration

EPOCHS = 30
# Long enough to be killed after its first checkpoint reaches the store, on any machine.
JOB = {
    "model": {"type": "mlp", "hidden_layers": [128], "dropout": 0.1},
    "regularization": {"l1": 1e-4},
    "optimizer": {"type": "sgd", "lr": 0.02, "momentum": 0.9},
    "training": {"epochs": EPOCHS, "batch_size": 32, "seed": 11, "early_stopping": None},
}
# A dead worker's job is requeued 3 s after its last heartbeat; every checkpoint goes to the store as
# soon as it is written (tests/worker/test_remote_store.py holds the throttled uploads).
ENV = {
    "REGTRAIN_LEASE_SECONDS": "3",
    "REGTRAIN_SWEEP_AFTER_SECONDS": "3",
    "REGTRAIN_CHECKPOINT_UPLOAD_SECONDS": "0",
}
WORKERS = ("worker", "worker-b")


class Hosts:
    def __init__(self, stack: Stack, store: SeaweedFS, prefix: str, homes: dict[str, Path]) -> None:
        self.stack, self.store, self.prefix, self.homes = stack, store, prefix, homes

    def stored(self, key: str) -> bytes | None:
        client = self.store.client()
        try:
            return bytes(client.get_object(Bucket=BUCKET, Key=f"{self.prefix}/{key}")["Body"].read())
        except client.exceptions.NoSuchKey:
            return None

    def training(self, job_id: str) -> str | None:
        """The worker whose own disk holds the job's working checkpoint: the one training it."""
        for name in WORKERS:
            if (self.homes[name] / "work" / "artifacts" / "checkpoints" / f"{job_id}.safetensors").is_file():
                return name
        return None


@pytest.fixture(scope="module")
def hosts(
    tmp_path_factory: pytest.TempPathFactory, postgres_module_url: str, redis_module_url: str, s3_server: SeaweedFS
) -> Iterator[Hosts]:
    homes = {name: tmp_path_factory.mktemp(f"{name}-host") for name in ("api", *WORKERS, "scheduler")}
    prefix = f"shared-nothing-{uuid.uuid4().hex[:8]}"
    stack = start_stack(
        homes["api"],
        postgres_module_url,
        redis_module_url,
        extra_env={**s3_server.environment(prefix), **ENV},
        worker_home=homes["worker"],
    )
    try:
        stack.start("worker-b", "worker", home=homes["worker-b"])
        stack.start("scheduler", "scheduler", home=homes["scheduler"])
        yield Hosts(stack, s3_server, prefix, homes)
    finally:
        stack.stop()


def digits_csv() -> bytes:
    digits = load_digits()
    header = [f"pixel{i}" for i in range(digits.data.shape[1])] + ["digit"]
    rows = [[int(v) for v in row] + [int(label)] for row, label in zip(digits.data, digits.target, strict=True)]
    return csv_bytes(header, rows)


def epoch_of(checkpoint: bytes, folder: Path) -> int:
    path = folder / f"{uuid.uuid4().hex}.safetensors"
    path.write_bytes(checkpoint)
    with safe_open(str(path), framework="np") as stored:
        return int(stored.metadata()["epoch"])


def job(stack: Stack, job_id: str) -> dict[str, Any]:
    return dict(stack.client.get(f"/v1/jobs/{job_id}").json())


def events(stack: Stack, job_id: str) -> list[Any]:
    with stack.client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(60)) as response:
        assert response.status_code == 200
        return list(parse(response.iter_lines()))


def tensors(stack: Stack, job_id: str) -> dict[str, np.ndarray]:
    response = stack.client.get(f"/v1/jobs/{job_id}/artifact")
    assert response.status_code == 200, response.text
    return load_safetensors(response.content)


def test_another_worker_resumes_a_killed_workers_job_from_the_store(hosts: Hosts, tmp_path: Path) -> None:
    stack = hosts.stack
    uploaded = stack.client.post(
        "/v1/datasets", data={"name": "digits", "target": "digit"}, files={"file": ("digits.csv", digits_csv())}
    )
    assert uploaded.status_code == 201, uploaded.text
    dataset_id = uploaded.json()["id"]
    submitted = stack.submit({**JOB, "dataset": dataset_id})
    job_id, checkpoint_key = submitted["id"], f"artifacts/checkpoints/{submitted['id']}.safetensors"

    first = wait_until(lambda: hosts.training(job_id), timeout=120, what="a worker to start the job")
    # Killed as soon as the store holds a checkpoint: in the middle of a later epoch.
    wait_until(lambda: hosts.stored(checkpoint_key) is not None, timeout=120, what="a checkpoint in the store")
    assert job(stack, job_id)["progress"]["epoch"] < EPOCHS, "the job must still be training when it is killed"
    os.killpg(stack.processes[first].pid, signal.SIGKILL)
    stack.processes[first].wait()
    killed_at = time.monotonic()
    stored = hosts.stored(checkpoint_key)
    assert stored is not None
    resume_epoch = epoch_of(stored, tmp_path)

    done = stack.wait_for(job_id, timeout=240)
    assert done["status"] == "succeeded", (done["error"], stack.logs())
    assert done["attempts"] == 2
    print(
        f"\n[shared nothing] {first} killed after epoch {resume_epoch} reached the store; the other worker "
        f"finished the job {time.monotonic() - killed_at:.1f} s later"
    )
    other = next(name for name in WORKERS if name != first)
    assert list((hosts.homes[other] / "cache" / "datasets").rglob("data.parquet")), "it fetched the dataset itself"

    # The second attempt trained from the store's checkpoint on: its first epoch is the one after it.
    stream = events(stack, job_id)
    statuses = [(i, e.data["status"], e.data["attempt"]) for i, e in enumerate(stream) if e.kind == "status"]
    second_start = next(i for i, status, attempt in statuses if (status, attempt) == ("running", 2))
    resumed = [e.data["epoch"] for e in stream[second_start:] if e.kind == "epoch"]
    assert resumed == list(range(resume_epoch + 1, EPOCHS + 1))
    epochs = [e["epoch"] for e in stack.client.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]]
    assert epochs == list(range(1, EPOCHS + 1)), "every epoch recorded exactly once"

    # The same job trained without interruption ends with the same weights, bit for bit.
    reference = stack.submit({**JOB, "dataset": dataset_id})
    assert stack.wait_for(reference["id"], timeout=240)["status"] == "succeeded"
    expected, served = tensors(stack, reference["id"]), tensors(stack, job_id)
    assert served.keys() == expected.keys()
    for name, values in expected.items():
        assert np.array_equal(served[name], values), f"{name} differs from the uninterrupted run"
    assert hosts.stored(f"artifacts/{job_id}.safetensors") == stack.client.get(f"/v1/jobs/{job_id}/artifact").content

    digits = load_digits()
    records = [{f"pixel{i}": int(v) for i, v in enumerate(row)} for row in digits.data[:50]]
    predicted = stack.client.post(f"/v1/jobs/{job_id}/predict", json={"records": records})
    assert predicted.status_code == 200, predicted.text
    assert np.mean(np.array(predicted.json()["predictions"]) == digits.target[:50]) > 0.9
    # The API's own disk holds no dataset, checkpoint or artifact: they are all in the store.
    assert not [p for p in hosts.homes["api"].rglob("*") if p.suffix in (".parquet", ".safetensors")]
