"""A running job's epochs are written a few at a time (REGTRAIN_EPOCH_RECORD_SECONDS), and its checkpoint
is never ahead of what is written: a worker killed between two writes leaves a job that resumes with
every epoch recorded exactly once. The runner in this process, against a real SQLite database."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from sqlalchemy import event, select

from core.db import get_engine, get_session_factory
from core.settings import Settings
from models import EpochMetric, JobEvent, LayerStat
from models.base import utcnow
from scheduler.upkeep import Upkeep, reap
from tests.support.jobs import load, submit
from worker import runner
from worker.training.checkpoint import Checkpoint

SHORT: dict[str, Any] = {
    "dataset": "builtin:iris",
    "model": {"type": "linear"},
    "training": {"epochs": 6, "batch_size": 16, "early_stopping": None},
}
# Long enough that writes every few hundredths of a second record it in several pieces.
LONGER: dict[str, Any] = {
    "dataset": "builtin:digits",
    "model": {"hidden_layers": [32]},
    "training": {"epochs": 12, "batch_size": 32, "early_stopping": None},
}


def recorded_epochs(job_id: str) -> int:
    with get_session_factory()() as session:
        epochs = list(session.scalars(select(EpochMetric.epoch).where(EpochMetric.job_id == job_id)))
        return max(epochs, default=0)


def epoch_events(job_id: str) -> list[tuple[int, Any]]:
    """(epoch, when the row was written) of the job's epoch events, in stream order."""
    with get_session_factory()() as session:
        rows = session.execute(
            select(JobEvent.data, JobEvent.created_at)
            .where(JobEvent.job_id == job_id, JobEvent.kind == "epoch")
            .order_by(JobEvent.id)
        )
        return [(data["epoch"], created_at) for data, created_at in rows]


def spy_on_checkpoints(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(checkpoint epoch, last epoch in the database) at each checkpoint the runner writes."""
    written: list[tuple[int, int]] = []
    real = runner.save_checkpoint

    def save(path: Path, state: Checkpoint) -> None:
        written.append((state.epoch, recorded_epochs(path.stem)))
        real(path, state)

    monkeypatch.setattr(runner, "save_checkpoint", save)
    return written


def run_recorded(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    every_seconds: float,
    spec: dict[str, Any],
    commits: list[object] | None = None,
) -> tuple[str, list[int], list[tuple[int, int]]]:
    """Runs a job to success with epochs recorded every `every_seconds`: its id, its recorded epochs and
    (checkpoint epoch, last recorded epoch) at each checkpoint written. A succeeded job keeps none. The
    database commits of the runner's thread go to `commits`."""
    monkeypatch.setattr(settings, "epoch_record_seconds", every_seconds)
    written = spy_on_checkpoints(monkeypatch)
    job_id = submit(spec)
    runner_thread = threading.get_ident()

    def count(connection: object) -> None:
        # The lease's heartbeats (another thread, once a second) are not the job's writes.
        if commits is not None and threading.get_ident() == runner_thread:
            commits.append(connection)

    if commits is not None:
        event.listen(get_engine(), "commit", count)
    try:
        runner.run_job(job_id)
    finally:
        if commits is not None:
            event.remove(get_engine(), "commit", count)
    job, epochs = load(job_id)
    assert job.status == "succeeded", job.error_message
    assert not (settings.artifacts_dir / "checkpoints" / f"{job_id}.safetensors").exists(), "gone at success"
    return job_id, epochs, written


def test_a_job_shorter_than_the_interval_is_written_once_and_writes_no_checkpoint(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits: list[object] = []
    job_id, epochs, written = run_recorded(settings, monkeypatch, 3600, SHORT, commits)
    assert epochs == [1, 2, 3, 4, 5, 6]
    # Two transactions in all: the claim, then the epochs together with the success.
    assert len(commits) == 2
    events = epoch_events(job_id)
    # One transaction: every epoch's event carries the same write time, in epoch order.
    assert [epoch for epoch, _ in events] == epochs and len({at for _, at in events}) == 1
    with get_session_factory()() as session:
        layer_epochs = set(session.scalars(select(LayerStat.epoch).where(LayerStat.job_id == job_id)))
    assert layer_epochs == set(epochs)
    # Nothing was recorded until training ended, so no checkpoint could be kept; then the artifact made
    # one needless.
    assert written == []


def test_every_epoch_on_its_own_when_the_interval_is_zero(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id, _, written = run_recorded(settings, monkeypatch, 0, SHORT)
    assert [epoch for epoch, _ in epoch_events(job_id)] == [1, 2, 3, 4, 5, 6]
    assert written == [(epoch, epoch) for epoch in range(1, 7)]


def test_a_checkpoint_is_never_ahead_of_the_recorded_epochs(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, epochs, written = run_recorded(settings, monkeypatch, 0.02, LONGER)
    assert epochs == list(range(1, 13))
    assert written, "checkpoints were kept while it trained"
    assert all(epoch <= recorded for epoch, recorded in written), written
    assert [epoch for epoch, _ in written] == sorted({epoch for epoch, _ in written})


class Killed(BaseException):
    """Ends the attempt the way SIGKILL would: nothing of the runner's own handling runs."""


def weights(settings: Settings, job_id: str) -> dict[str, torch.Tensor]:
    job, _ = load(job_id)
    with safe_open(str(settings.artifacts_dir / (job.artifact_key or "")), framework="pt") as stored:
        return {name: stored.get_tensor(name) for name in stored.keys()}  # noqa: SIM118


def numbers(job_id: str) -> list[dict[str, Any]]:
    with get_session_factory()() as session:
        rows = session.scalars(select(EpochMetric).where(EpochMetric.job_id == job_id).order_by(EpochMetric.epoch))
        return [
            {
                c.name: getattr(row, c.name)
                for c in EpochMetric.__table__.columns
                if c.name not in ("id", "job_id", "seconds")
            }
            for row in rows
        ]


@pytest.mark.parametrize("dies_in", ["write", "checkpoint"])
def test_a_worker_killed_between_writes_resumes_with_every_epoch_recorded_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, dies_in: str
) -> None:
    """Killed before its third write (those epochs and their checkpoint are lost), or after its second
    write but before that write's checkpoint (the resumed attempt redoes epochs already recorded, and
    replaces them)."""
    monkeypatch.setattr(settings, "epoch_record_seconds", 0.02)
    twin = submit(LONGER)
    runner.run_job(twin)

    job_id = submit(LONGER)
    owner, name = (runner.DatabaseReporter, "write") if dies_in == "write" else (runner, "save_checkpoint")
    real = getattr(owner, name)
    calls = {"n": 0}

    def die_on_the_third(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == (3 if dies_in == "write" else 2):
            raise Killed
        real(*args)

    monkeypatch.setattr(owner, name, die_on_the_third)
    with pytest.raises(Killed):
        runner.run_job(job_id)
    monkeypatch.setattr(owner, name, real)
    recorded_before = recorded_epochs(job_id)
    assert 1 <= recorded_before < 12

    # The scheduler presumes the attempt dead once its lease expires, and the job runs again.
    with get_session_factory()() as session:
        upkeep = Upkeep()
        reap(session, settings, utcnow() + timedelta(seconds=settings.lease_seconds + 1), upkeep)
    assert upkeep.requeued == [job_id]
    runner.run_job(job_id)

    job, epochs = load(job_id)
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert epochs == list(range(1, 13))
    assert numbers(job_id) == numbers(twin)
    twin_weights, resumed_weights = weights(settings, twin), weights(settings, job_id)
    assert twin_weights.keys() == resumed_weights.keys()
    assert all(torch.equal(resumed_weights[name], tensor) for name, tensor in twin_weights.items())
