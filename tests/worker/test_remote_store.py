"""The job runner in this process with an S3 store (a real SeaweedFS) and a home of its own per "host":
a worker that shuts down puts its last checkpoint into the store before it hands the job back, even
when its periodic uploads are far apart, and keeps no copy; a worker on another host with an empty home
resumes from that checkpoint and ends with an uninterrupted run's weights; its artifact and partial
artifacts are in the store, not on its disk."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors

from core.builtins import BUILTINS
from core.db import get_session_factory
from core.settings import Settings, get_settings
from core.storage import artifact_object_key, checkpoint_object_key, get_store
from models import JobStatus, transition
from tests.support.app import configure, release
from tests.support.jobs import load, submit
from tests.support.s3 import SeaweedFS
from tests.support.servers import wait_until
from worker import runner
from worker.datasets import dataset_file, evict_least_recently_used, load_dataset
from worker.training import EpochReport, NullReporter, TrainConfig, train
from worker.training.checkpoint import checkpoint_epoch

JOB = {
    "dataset": "builtin:digits",
    "model": {"hidden_layers": [32]},
    "training": {"epochs": 8, "batch_size": 16, "early_stopping": None},
}


class Hosts:
    """Worker hosts that share a database and the store, and nothing else."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: SeaweedFS) -> None:
        self.tmp_path, self.monkeypatch = tmp_path, monkeypatch
        self.database_url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
        self.env = {
            name.removeprefix("REGTRAIN_").lower(): value
            for name, value in server.environment(f"worker-{tmp_path.name}").items()
        }

    def become(self, host: str) -> Settings:
        settings = configure(
            self.tmp_path / host,
            self.monkeypatch,
            database_url=self.database_url,
            job_time_limit_seconds="120",
            # Far apart: only the upload at the end of an attempt can put a checkpoint into the store.
            checkpoint_upload_seconds="3600",
            **self.env,
        )
        load_dataset("builtin:digits", BUILTINS["digits"].sha256, "target")
        return settings


@pytest.fixture
def hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_server: SeaweedFS) -> Iterator[Hosts]:
    yield Hosts(tmp_path, monkeypatch, s3_server)
    runner.SHUTTING_DOWN.clear()
    release()


def when(condition: Callable[[], bool], action: Callable[[], None]) -> Callable[[], None]:
    def watch() -> None:
        wait_until(condition, timeout=60, interval=0.02, what="the job to get there")
        action()

    thread = threading.Thread(target=watch)
    thread.start()
    return thread.join


def test_a_job_handed_back_resumes_on_another_host_from_the_stores_checkpoint(
    hosts: Hosts, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = hosts.become("host-a")
    store = get_store(first)
    job_id = submit(JOB)
    # The worker starts shutting down once epoch 2 has ended, wherever the job's own timing puts that.
    reported = runner.DatabaseReporter.on_epoch

    def on_epoch(reporter: runner.DatabaseReporter, report: EpochReport) -> None:
        reported(reporter, report)
        if report.epoch == 2:
            runner.SHUTTING_DOWN.set()

    monkeypatch.setattr(runner.DatabaseReporter, "on_epoch", on_epoch)
    try:
        runner.run_job(job_id)
    finally:
        runner.SHUTTING_DOWN.clear()
        monkeypatch.setattr(runner.DatabaseReporter, "on_epoch", reported)
    job, epochs = load(job_id)
    assert job.status == "queued"
    stored = first.home / "stored.safetensors"
    store.get_to_file(checkpoint_object_key(job_id), stored)
    assert checkpoint_epoch(stored) == max(epochs), "the last checkpoint, not a periodic one"
    assert not list(first.home.rglob(f"{job_id}*.safetensors")), "host a keeps no copy once the store has it"

    second = hosts.become("host-b")
    caplog.set_level(logging.INFO, logger="worker.storage")
    runner.run_job(job_id)
    job, epochs = load(job_id)
    assert job.status == "succeeded" and job.attempts == 2 and epochs == list(range(1, 9))
    assert f"job {job_id} resumes from the store's checkpoint of epoch {checkpoint_epoch(stored)}" in caplog.text

    served = load_safetensors(store.read_bytes(artifact_object_key(job.artifact_key or "")))
    data = load_dataset("builtin:digits", BUILTINS["digits"].sha256, "target").arrays
    reference = train(TrainConfig.from_spec(job.spec, job.task), data, NullReporter())  # type: ignore[arg-type]
    for name, tensor in reference.state.items():
        assert np.array_equal(served[name], tensor.numpy()), f"{name} differs from the uninterrupted run"
    assert not list(second.home.rglob("*.safetensors")), "host b's checkpoint and artifact went into the store"
    assert not store.exists(checkpoint_object_key(job_id)), "a succeeded job's checkpoint is removed from the store"


def test_a_canceled_job_keeps_its_partial_weights_in_the_store(hosts: Hosts) -> None:
    settings = hosts.become("host-a")
    job_id = submit({**JOB, "training": {**JOB["training"], "epochs": 200}})

    def cancel() -> None:
        with get_session_factory()() as session:
            transition(session, job_id, JobStatus.CANCELED, error_type="canceled")
            session.commit()

    joined = when(lambda: load(job_id)[0].progress_epoch >= 2, cancel)
    runner.run_job(job_id)
    joined()
    job, epochs = load(job_id)
    assert job.status == "canceled" and job.artifact_partial and job.artifact_key
    partial = load_safetensors(get_store(get_settings()).read_bytes(artifact_object_key(job.artifact_key)))
    assert set(partial) >= {"hidden.0.linear.weight", "output.weight"}
    assert job.artifact_epoch == max(epochs)
    assert not list(settings.home.rglob("*.safetensors")), "nothing of the job stays on the worker's disk"


def test_the_dataset_cache_keeps_to_its_limit_least_recently_used_first(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    now = time.time()
    ages = {"oldest": 3600, "older": 1800, "recent": 10, "new": 0}
    for name, age in ages.items():
        path = cache / "datasets" / name / "table.parquet"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - age, now - age))
    (cache / "datasets" / ".incoming-abc-table.parquet").write_bytes(b"x" * 5000)  # a fetch under way
    keep = cache / "datasets" / "new" / "table.parquet"

    removed = evict_least_recently_used(cache, 2500, keep=keep)
    # Oldest first, and only as many as needed; the fetch under way is neither counted nor removed.
    assert [p.parent.name for p in removed] == ["oldest", "older"]
    assert sorted(p.parent.name for p in cache.rglob("table.parquet")) == ["new", "recent"]
    assert (cache / "datasets" / ".incoming-abc-table.parquet").exists()
    # Over the limit with only files in use left: none of them is removed.
    assert evict_least_recently_used(cache, 0, keep=keep) == []


def test_a_worker_fetches_a_dataset_once_and_evicts_beyond_its_limit(
    hosts: Hosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = hosts.become("host-a")
    store = get_store(settings)
    store.put_bytes("datasets/one/table.parquet", b"1" * 3000)
    store.put_bytes("datasets/two/table.parquet", b"2" * 3000)
    monkeypatch.setattr(settings, "dataset_cache_bytes", 4000)
    first = dataset_file("datasets/one/table.parquet")
    assert first.read_bytes() == b"1" * 3000 and first.is_relative_to(settings.home / "cache")
    old = time.time() - 3600
    os.utime(first, (old, old))
    second = dataset_file("datasets/two/table.parquet")
    assert second.read_bytes() == b"2" * 3000
    assert not first.exists(), "the least recently used copy made room"
    # Used again: fetched again, and counted as just used.
    assert dataset_file("datasets/one/table.parquet").read_bytes() == b"1" * 3000
