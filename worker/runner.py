"""Runs one job: claim it, train it, record each epoch, finish it. Every write is fenced by the
attempt number, so a job that was canceled or taken over in the meantime is never written to."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from core.db import session_scope
from core.settings import get_settings
from models import EpochMetric, JobStatus, LayerStat, transition, update_running
from models.base import utcnow
from worker.artifacts import write_artifact
from worker.datasets import DatasetUnavailable, LoadedData, load_dataset
from worker.training import Canceled, Diverged, EpochReport, TrainConfig, train

log = logging.getLogger(__name__)

# How often a running attempt renews its lease and learns of a cancel: the stop latency's bound.
HEARTBEAT_SECONDS = 1.0


class Lease:
    """Heartbeats a running attempt from a background thread and raises a flag when the attempt no
    longer owns its job (canceled, finished elsewhere, or taken over), so the training loop can check
    at every step by reading a flag instead of querying."""

    def __init__(self, job_id: str, attempt: int) -> None:
        self.job_id, self.attempt = job_id, attempt
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._done.wait(HEARTBEAT_SECONDS):
            try:
                with session_scope() as session:
                    owned = update_running(session, self.job_id, self.attempt, heartbeat_at=utcnow())
            except Exception:
                log.warning("heartbeat for job %s failed; retrying", self.job_id, exc_info=True)
                continue
            if not owned:
                self.lost.set()
                return


class DatabaseReporter:
    def __init__(self, job_id: str, lease: Lease) -> None:
        self.job_id, self.lease = job_id, lease

    def should_stop(self) -> bool:
        return self.lease.lost.is_set()

    def on_epoch(self, report: EpochReport) -> None:
        validation = report.validation or {}
        totals = report.totals
        with session_scope() as session:
            if not update_running(session, self.job_id, self.lease.attempt, progress_epoch=report.epoch):
                self.lease.lost.set()
                raise Canceled(report.epoch)
            session.execute(
                insert(EpochMetric).values(
                    job_id=self.job_id,
                    epoch=report.epoch,
                    train_data_loss=report.train_data_loss,
                    l1_penalty=report.l1_penalty,
                    l2_penalty=report.l2_penalty,
                    val_data_loss=validation.get("data_loss"),
                    val_accuracy=validation.get("accuracy"),
                    val_r2=validation.get("r2"),
                    val_rmse=validation.get("rmse"),
                    weight_count=totals["count"],
                    l1_norm=totals["l1_norm"],
                    l2_norm=totals["l2_norm"],
                    max_abs=totals["max_abs"],
                    zero_fraction=totals["zero_fraction"],
                    near_zero_fraction=totals["near_zero_fraction"],
                    lr=report.lr,
                    seconds=report.seconds,
                )
            )
            if report.layers is not None:
                self._insert_layers(session, report.epoch, report.layers)

    def on_layers(self, epoch: int, layers: list[dict[str, Any]]) -> None:
        with session_scope() as session:
            if not update_running(session, self.job_id, self.lease.attempt, heartbeat_at=utcnow()):
                self.lease.lost.set()
                raise Canceled(epoch)
            # Replaces the scheduled record of that epoch, if any: the same weights, so the same numbers.
            session.execute(delete(LayerStat).where(LayerStat.job_id == self.job_id, LayerStat.epoch == epoch))
            self._insert_layers(session, epoch, layers)

    def _insert_layers(self, session: Session, epoch: int, layers: list[dict[str, Any]]) -> None:
        rows = [{**layer, "job_id": self.job_id, "epoch": epoch, "position": i} for i, layer in enumerate(layers)]
        session.execute(insert(LayerStat), rows)


def _finite(value: Any) -> Any:
    """JSON has no NaN: a non-finite number in a result is stored as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _fail(job_id: str, attempt: int, error_type: str, message: str) -> None:
    with session_scope() as session:
        transition(
            session,
            job_id,
            JobStatus.FAILED,
            source=JobStatus.RUNNING,
            attempt=attempt,
            error_type=error_type,
            error_message=message,
        )


def run_job(job_id: str, load: Callable[[str, str, str], LoadedData] = load_dataset) -> None:
    """`load` maps (dataset id, sha256, target) to arrays; benchmarks pass their own data through it."""
    with session_scope() as session:
        job = transition(session, job_id, JobStatus.RUNNING, source=JobStatus.QUEUED)
        if job is None:
            log.info("job %s is not queued; nothing to do", job_id)
            return
        attempt, spec, task = job.attempts, job.spec, job.task
        dataset_id, sha256 = job.dataset_id, job.dataset_sha256

    settings = get_settings()
    with Lease(job_id, attempt) as lease:
        try:
            data = load(dataset_id, sha256, spec["target"] or "target")
            config = TrainConfig.from_spec(spec, task)  # type: ignore[arg-type]
            checkpoint = settings.artifacts_dir / "checkpoints" / f"{job_id}.safetensors"
            outcome = train(config, data.arrays, DatabaseReporter(job_id, lease), checkpoint_path=checkpoint)
            artifact_key = f"{job_id}.safetensors"
            write_artifact(settings.artifacts_dir / artifact_key, outcome, spec, task, data.layout)
        except Canceled as stop:
            log.info("job %s stopped at epoch %d: it no longer belongs to this attempt", job_id, stop.epoch)
            return
        except Diverged as exc:
            _fail(job_id, attempt, "diverged", str(exc))
            return
        except (DatasetUnavailable, ValueError) as exc:
            _fail(job_id, attempt, "invalid_data", str(exc))
            return
        except Exception as exc:
            log.exception("job %s failed", job_id)
            _fail(job_id, attempt, "internal", f"{type(exc).__name__}: {exc}")
            return

    result = _finite(outcome.result)
    with session_scope() as session:
        done = transition(
            session,
            job_id,
            JobStatus.SUCCEEDED,
            source=JobStatus.RUNNING,
            attempt=attempt,
            result=result,
            artifact_key=artifact_key,
            progress_epoch=result["epochs_run"],
        )
    if done is None:
        log.info("job %s finished training but was canceled or taken over first; result not recorded", job_id)
