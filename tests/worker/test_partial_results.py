"""A job that ends without success keeps the weights of its last checkpoint as a partial artifact, and
its error says whose fault it was: the user's data (`invalid_data`) or the service's (`internal`, with
a logged reference). The runner in this process, against a real SQLite database."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open

from api.services.jobs import job_read
from core.db import get_session_factory
from core.settings import Settings
from models import Job, JobStatus, transition
from tests.support.jobs import load, submit
from tests.support.servers import wait_until
from worker import runner
from worker.artifacts import write_partial_artifact
from worker.datasets import LoadedData
from worker.training import ArrayDataset, TrainConfig, engine
from worker.training.checkpoint import Checkpoint, load_checkpoint_weights, save_checkpoint
from worker.training.config import ModelConfig, TrainingConfig

LONG: dict[str, Any] = {
    "dataset": "builtin:digits",
    "model": {"hidden_layers": [32]},
    "training": {"epochs": 200, "batch_size": 16, "early_stopping": None},
}
SHORT: dict[str, Any] = {
    "dataset": "builtin:iris",
    "model": {"type": "linear"},
    "training": {"epochs": 5, "batch_size": 16},
}


def checkpoint_of(settings: Settings, job_id: str) -> Path:
    return settings.artifacts_dir / "checkpoints" / f"{job_id}.safetensors"


def read_artifact(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    with safe_open(str(path), framework="pt") as stored:
        return stored.metadata(), {name: stored.get_tensor(name) for name in stored.keys()}  # noqa: SIM118


def assert_partial_at_last_checkpoint(settings: Settings, job: Job) -> int:
    """The job serves, marked partial, exactly the weights of its checkpoint, at the checkpoint's epoch."""
    assert job.artifact_key is not None and job.artifact_partial
    checkpoint_epoch, checkpoint_weights = load_checkpoint_weights(checkpoint_of(settings, job.id))
    assert job.artifact_epoch == checkpoint_epoch >= 1
    metadata, tensors = read_artifact(settings.artifacts_dir / job.artifact_key)
    assert (metadata["partial"], metadata["epoch"]) == ("true", str(checkpoint_epoch))
    assert tensors.keys() == checkpoint_weights.keys()
    for name, tensor in tensors.items():
        assert torch.equal(tensor, checkpoint_weights[name]), name
    assert job_read(job).model_dump()["artifact"] == {"partial": True, "epoch": checkpoint_epoch}
    return checkpoint_epoch


def when(condition: Callable[[], bool], action: Callable[[], None]) -> Callable[[], None]:
    """Runs `action` from another thread once `condition` holds, as a request or a signal would arrive."""

    def watch() -> None:
        wait_until(condition, timeout=60, interval=0.02, what="the job to get there")
        action()

    thread = threading.Thread(target=watch)
    thread.start()
    return thread.join


def test_a_job_canceled_mid_training_serves_its_last_checkpoint_as_partial(settings: Settings) -> None:
    job_id = submit({**LONG, "training": {**LONG["training"], "epochs": 100}})

    def cancel() -> None:
        with get_session_factory()() as session:
            transition(session, job_id, JobStatus.CANCELED, error_type="canceled")
            session.commit()

    joined = when(lambda: load(job_id)[0].progress_epoch >= 2, cancel)
    runner.run_job(job_id)
    joined()
    job, epochs = load(job_id)
    assert job.status == "canceled" and len(epochs) < 100
    # The checkpoint follows each recorded epoch: the served weights are the last recorded epoch's.
    assert assert_partial_at_last_checkpoint(settings, job) == max(epochs)


def test_a_timed_out_job_serves_its_last_checkpoint_as_partial(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "job_time_limit_seconds", 2)
    # So many short epochs that no machine finishes them within the limit.
    job_id = submit({**LONG, "training": {**LONG["training"], "batch_size": 128, "epochs": 5000}})
    runner.run_job(job_id)
    job, epochs = load(job_id)
    assert (job.status, job.error_type, job.error_reference) == ("failed", "timeout", None)
    assert assert_partial_at_last_checkpoint(settings, job) == max(epochs)


def test_a_job_handed_back_at_shutdown_keeps_no_partial_artifact(settings: Settings) -> None:
    job_id = submit(LONG)  # long enough that the shutdown always comes before its end
    joined = when(lambda: load(job_id)[0].progress_epoch >= 1, runner.SHUTTING_DOWN.set)
    runner.run_job(job_id)
    joined()
    job, _ = load(job_id)
    assert job.status == "queued" and checkpoint_of(settings, job_id).exists()
    assert (job.artifact_key, job.artifact_epoch, job.artifact_partial) == (None, None, False)
    assert not list(settings.artifacts_dir.glob(f"{job_id}*.safetensors"))


def test_a_succeeded_job_records_its_weights_epoch_as_complete(settings: Settings) -> None:
    job_id = submit(SHORT)
    runner.run_job(job_id)
    job, _ = load(job_id)
    assert job.status == "succeeded" and job.result is not None
    assert (job.artifact_epoch, job.artifact_partial) == (job.result["weights_epoch"], False)
    assert job_read(job).model_dump()["artifact"] == {"partial": False, "epoch": 5}
    metadata, _ = read_artifact(settings.artifacts_dir / (job.artifact_key or ""))
    assert (metadata["partial"], metadata["epoch"]) == ("false", "5")


def test_a_diverged_job_serves_the_finite_checkpoint_before_divergence(settings: Settings) -> None:
    # Linear regression with this step size blows up in its third epoch (the loss grows every epoch).
    job_id = submit(
        {
            "dataset": "builtin:diabetes",
            "model": {"type": "linear"},
            "optimizer": {"lr": 3.0},
            "training": {"epochs": 30},
        }
    )
    runner.run_job(job_id)
    job, epochs = load(job_id)
    assert (job.status, job.error_type) == ("failed", "diverged")
    assert epochs and assert_partial_at_last_checkpoint(settings, job) == max(epochs)
    _, tensors = read_artifact(settings.artifacts_dir / (job.artifact_key or ""))
    assert all(bool(torch.isfinite(t).all()) for t in tensors.values())


def test_non_finite_checkpoint_weights_are_never_written_as_an_artifact(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint.safetensors"
    weights = {"linear.weight": torch.tensor([[1.0, math.nan]]), "linear.bias": torch.zeros(1)}
    save_checkpoint(
        checkpoint,
        Checkpoint(
            epoch=3,
            net=weights,
            optimizer={"state": {}, "param_groups": []},
            rng=torch.get_rng_state(),
            best_state=None,
            progress={},
            histogram_edges={},
        ),
    )
    data = ArrayDataset(X=np.arange(20.0).reshape(10, 2), y=np.arange(10.0), feature_names=("a", "b"))
    config = TrainConfig(task="regression", model=ModelConfig(type="linear"), training=TrainingConfig(epochs=5))
    written = write_partial_artifact(tmp_path / "a.safetensors", checkpoint, data, config, {}, "regression")
    assert written is None and not (tmp_path / "a.safetensors").exists()


def test_an_engine_bug_is_internal_with_a_logged_reference_and_keeps_its_last_weights(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = engine.records_layers

    def broken(epoch: int, epochs: int) -> bool:
        if epoch == 3:
            raise KeyError("layer 'hidden.9'")
        return real(epoch, epochs)

    monkeypatch.setattr(engine, "records_layers", broken)
    job_id = submit({**SHORT, "training": {**SHORT["training"], "epochs": 10}})
    with caplog.at_level(logging.ERROR, logger="worker.runner"):
        runner.run_job(job_id)
    job, epochs = load(job_id)
    assert (job.status, job.error_type) == ("failed", "internal")
    reference = job.error_reference
    assert reference is not None and len(reference) == 36
    assert job.error_message == (
        f"The service failed while training this job; it has been logged under reference {reference}. "
        "This is not a problem with your data or spec."
    )
    assert job_read(job).model_dump()["error"] == {
        "type": "internal",
        "message": job.error_message,
        "reference": reference,
    }
    logged = [record for record in caplog.records if reference in record.getMessage()]
    assert logged and logged[0].levelno == logging.ERROR and logged[0].exc_info is not None
    assert "KeyError" in caplog.text and "Traceback" in caplog.text
    # Epochs 1 and 2 finished and were checkpointed before the fault.
    assert epochs == [1, 2] and assert_partial_at_last_checkpoint(settings, job) == 2


def test_a_value_error_inside_the_engine_is_not_blamed_on_the_data(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise ValueError("optimizer got an empty parameter list")

    monkeypatch.setattr(engine, "build_optimizer", broken)
    job_id = submit(SHORT)
    runner.run_job(job_id)
    job, _ = load(job_id)
    assert (job.status, job.error_type) == ("failed", "internal")
    assert job.error_reference is not None and job.error_reference in (job.error_message or "")
    assert "optimizer" not in (job.error_message or "") and "ValueError" not in (job.error_message or "")
    # Nothing was trained, so there are no weights to keep.
    assert (job.artifact_key, job_read(job).model_dump()["artifact"]) == (None, None)


def test_bad_user_data_is_invalid_data_with_a_sentence_saying_what_to_fix(settings: Settings) -> None:
    X = np.ones((30, 4))
    X[[3, 7], 1] = np.nan
    y = np.arange(30) % 3

    def with_missing_values(*_: object) -> LoadedData:
        return LoadedData(ArrayDataset(X=X, y=y, feature_names=("a", "b", "c", "d")))

    job_id = submit(SHORT)
    runner.run_job(job_id, load=with_missing_values)
    job, _ = load(job_id)
    assert (job.status, job.error_type, job.error_reference) == ("failed", "invalid_data", None)
    assert job.error_message == "2 rows have missing or non-finite values; set training.missing to 'drop' or 'mean'"
    assert job.artifact_key is None
