"""The job runner in this process against a real database: why an attempt stops decides what happens
to its job (time limit, shutdown, cancel), and what it recorded is kept."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch

from core.celery_app import queue_depth
from core.db import get_session_factory
from core.settings import Settings
from models import JobStatus, transition
from tests.support.jobs import load, submit
from tests.support.servers import wait_until
from worker import runner
from worker.training import TrainConfig
from worker.training.config import ModelConfig, TrainingConfig

LONG = {
    "dataset": "builtin:digits",
    "model": {"hidden_layers": [128]},
    "training": {"epochs": 200, "batch_size": 8, "early_stopping": None},
}


def test_a_job_past_its_time_limit_fails_with_timeout_and_keeps_what_it_made(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "job_time_limit_seconds", 3)
    # Short epochs, so that several are recorded before the limit even on a loaded machine, and so many
    # that no machine finishes them within it.
    job_id = submit({**LONG, "training": {**LONG["training"], "batch_size": 128, "epochs": 5000}})
    runner.run_job(job_id)
    job, epochs = load(job_id)
    assert (job.status, job.error_type) == ("failed", "timeout")
    assert "longer than this server's limit of 3 s" in (job.error_message or "")
    assert epochs and epochs == list(range(1, len(epochs) + 1)) and len(epochs) < 5000
    assert (settings.artifacts_dir / "checkpoints" / f"{job_id}.safetensors").exists()


def after_first_epoch(job_id: str, action: Callable[[], None]) -> threading.Thread:
    """Runs `action` once the job has recorded an epoch, as a signal or a request would arrive."""

    def watch() -> None:
        wait_until(lambda: load(job_id)[0].progress_epoch >= 1, timeout=60, interval=0.02, what="an epoch")
        action()

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def test_a_shutdown_hands_the_job_back_without_spending_an_attempt(settings: Settings) -> None:
    job_id = submit({**LONG, "training": {**LONG["training"], "epochs": 3, "batch_size": 2}})
    watcher = after_first_epoch(job_id, runner.SHUTTING_DOWN.set)
    runner.run_job(job_id)
    watcher.join()
    job, _ = load(job_id)
    assert (job.status, job.attempts, job.requeues) == ("queued", 1, 1)
    assert job.error_type is None and job.heartbeat_at is None
    runner.SHUTTING_DOWN.clear()
    runner.run_job(job_id)
    job, epochs = load(job_id)
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert epochs == [1, 2, 3]


def test_a_cancel_stops_the_attempt_and_keeps_its_epochs(settings: Settings) -> None:
    job_id = submit({**LONG, "training": {**LONG["training"], "epochs": 50}})

    def cancel() -> None:
        with get_session_factory()() as session:
            transition(session, job_id, JobStatus.CANCELED, error_type="canceled")
            session.commit()

    watcher = after_first_epoch(job_id, cancel)
    runner.run_job(job_id)
    watcher.join()
    job, epochs = load(job_id)
    assert job.status == "canceled" and job.result is None
    assert len(epochs) < 50


def test_a_message_taken_during_shutdown_goes_back_to_the_queue(settings: Settings) -> None:
    """A worker shutting down may be handed a message (on the embedded broker, often the one it published
    when it handed its own job back): it publishes it again, so the job waits for the next worker, not for
    the sweeper."""
    job_id = submit({**LONG, "training": {**LONG["training"], "epochs": 1}})
    job, _ = load(job_id)
    before = queue_depth(job.queue)
    runner.SHUTTING_DOWN.set()
    runner.run_job(job_id)
    job, epochs = load(job_id)
    assert (job.status, job.attempts, epochs) == ("queued", 0, [])
    assert queue_depth(job.queue) == before + 1


@pytest.mark.parametrize(
    ("model", "batch_size", "shape", "expected"),
    [
        (ModelConfig(type="linear"), 32, (150, 4), True),  # iris: a few hundred multiply-adds a step
        (ModelConfig(type="mlp", hidden_layers=[64]), 32, (1797, 64), True),  # digits: about 130,000
        (ModelConfig(type="mlp", hidden_layers=[256, 256]), 256, (4000, 100), False),  # about 23 million
        (ModelConfig(type="linear"), None, (200_000, 100), False),  # the whole table in one step
        (ModelConfig(type="cnn"), 8, (100, 1, 8, 8), False),  # convolutions: never
    ],
)
def test_small_jobs_train_on_one_thread(
    model: ModelConfig, batch_size: int | None, shape: tuple[int, ...], expected: bool
) -> None:
    config = TrainConfig(task="classification", model=model, training=TrainingConfig(batch_size=batch_size))
    assert runner.small(config, shape) is expected


def test_a_small_job_runs_on_one_thread_and_gives_the_thread_back(settings: Settings) -> None:
    before = torch.get_num_threads()
    seen: list[int] = []
    real = runner.train

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "train", spy)
        runner.run_job(submit({"dataset": "builtin:iris", "model": {"type": "linear"}, "training": {"epochs": 2}}))
        patch.setattr(runner, "JOBS_AT_A_TIME", 2)
        runner.run_job(submit({"dataset": "builtin:iris", "model": {"type": "linear"}, "training": {"epochs": 2}}))
    assert seen == [1, before] and torch.get_num_threads() == before
