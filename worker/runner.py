"""Runs one job: claim it, train it, record each epoch, finish it. Every write is fenced by the
attempt number, so a job that was canceled or taken over in the meantime is never written to.

An attempt stops at its next step when its lease is lost (canceled, or presumed dead and taken over),
when its worker is shutting down (the job goes back to the queue at once and resumes elsewhere from
its last checkpoint), or when it runs past REGTRAIN_JOB_TIME_LIMIT_SECONDS (it fails with `timeout`,
keeping its checkpoint).

A job that ends without success (canceled, timed out, diverged, bad data, an internal fault) keeps the
weights of its last finite checkpoint as a partial artifact. Its error says whose fault it was: the
user's data (`invalid_data`: only InvalidData and DatasetUnavailable) or the service's (`internal`,
with the reference its traceback was logged under; an object missing from the store is one).

The job's checkpoint, dataset and artifact go through the store (worker/storage.py): an attempt starts
from the store's checkpoint, so any worker host resumes any job. A store that stays unreachable hands
the job back to the queue, as a shutdown does; it is not failed."""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from sqlalchemy import delete, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from core.celery_app import enqueue_job
from core.db import session_scope
from core.errors import ObjectMissing, StoreUnavailable
from core.settings import get_settings
from core.storage import artifact_object_key, get_store
from models import EpochMetric, Job, JobStatus, LayerStat, job_queue, record_events, transition, update_running
from models.base import utcnow
from models.job_state import record_partial_artifact
from worker.artifacts import write_artifact, write_partial_artifact
from worker.datasets import DatasetUnavailable, LoadedData, load_dataset
from worker.storage import CheckpointSync, put_when_written
from worker.training import Canceled, Diverged, EpochReport, InvalidData, TrainConfig, train
from worker.training.checkpoint import Checkpoint, save_checkpoint

log = logging.getLogger(__name__)

# How often a running attempt renews its lease and learns of a cancel: the stop latency's bound.
HEARTBEAT_SECONDS = 1.0
# A database outage shorter than this does not end an attempt: its writes wait and retry.
DATABASE_RETRY_SECONDS = 60.0

# Set when this worker process begins a warm shutdown (SIGTERM): running attempts hand their jobs back.
SHUTTING_DOWN = threading.Event()
# How many jobs this process runs side by side (`regtrain worker --concurrency`): torch's thread setting is
# the process's, so only a process that runs one job at a time changes it for a job.
JOBS_AT_A_TIME = 1

T = TypeVar("T")


def retrying(write: Callable[[], T]) -> T:
    deadline = time.monotonic() + DATABASE_RETRY_SECONDS
    delay = 0.2
    while True:
        try:
            return write()
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            log.warning("database unavailable; retrying a write in %.1f s", delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


class Lease:
    """Heartbeats a running attempt from a background thread, and says (cheaply, from flags) whether
    the attempt must stop and why."""

    def __init__(self, job_id: str, attempt: int, time_limit_seconds: float) -> None:
        self.job_id, self.attempt = job_id, attempt
        self.lost = threading.Event()
        self.deadline = time.monotonic() + time_limit_seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def stop_reason(self) -> str | None:
        if self.lost.is_set():
            return "lost"
        if SHUTTING_DOWN.is_set():
            return "shutdown"
        if time.monotonic() > self.deadline:
            return "timeout"
        return None

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


# Core inserts (no ORM bookkeeping), compiled once: an epoch's rows are written in about a millisecond,
# which is most of what a small job's epoch costs beyond its training.
EPOCH_INSERT = EpochMetric.metadata.tables[EpochMetric.__tablename__].insert()
LAYER_INSERT = LayerStat.metadata.tables[LayerStat.__tablename__].insert()


class DatabaseReporter:
    """Records a running attempt's epochs: those that finished meanwhile together, at most once every
    REGTRAIN_EPOCH_RECORD_SECONDS, in one fenced transaction each (rows, layer statistics, events,
    progress and heartbeat), and what is left when the attempt ends. A small job's twenty epochs are one
    write, not twenty, and a live stream still sees each epoch within that interval of its end.

    A checkpoint is written only once its epoch is recorded: one ahead of the recorded epochs would
    resume the job with a hole in its metrics. A worker killed before a write leaves the previous one,
    from which the job redoes the epochs after it (replacing any that were recorded)."""

    def __init__(self, job_id: str, lease: Lease, checkpoint: CheckpointSync, every_seconds: float) -> None:
        self.job_id, self.lease, self.checkpoint, self.every = job_id, lease, checkpoint, every_seconds
        self.recorded = 0  # the last epoch in the database
        self._epochs: list[tuple[EpochReport, dict[str, Any]]] = []  # with its event, stamped when it ended
        self._layers: list[tuple[int, list[dict[str, Any]]]] = []  # on_layers, for the next write
        self._written_at = time.monotonic()  # a job shorter than the interval is written once, at its end
        self._first_write = True
        self._checkpoint: Checkpoint | None = None  # the engine's latest, while its epoch is not recorded yet

    def should_stop(self) -> bool:
        return self.lease.stop_reason() is not None

    def on_epoch(self, report: EpochReport) -> None:
        self._epochs.append((report, epoch_event(report)))
        if time.monotonic() - self._written_at >= self.every:
            self.write()

    def on_layers(self, epoch: int, layers: list[dict[str, Any]]) -> None:
        self._layers.append((epoch, layers))

    def checkpointed(self, state: Checkpoint) -> None:
        """The engine's callback with an epoch's checkpoint: written now if that epoch is recorded, else
        held until it is (the next write, or the attempt's end)."""
        self._checkpoint = state
        self._keep_checkpoint()

    def _keep_checkpoint(self) -> None:
        state = self._checkpoint
        if state is not None and state.epoch <= self.recorded:
            save_checkpoint(self.checkpoint.path, state)
            self._checkpoint = None
            self.checkpoint.written(state.epoch)

    def settle(self, *, quietly: bool = False, keep_checkpoint: bool = True) -> None:
        """The attempt ends while it owns the job: record what is pending, and keep the checkpoint that
        goes with it (not when training ended: the artifact follows). `quietly`: on the way out after a
        failure, a failure here is logged, not raised."""
        try:
            self.write()
            if keep_checkpoint:
                self._keep_checkpoint()
        except Exception:
            if not quietly:
                raise
            log.warning("job %s: could not record its last epochs", self.job_id, exc_info=True)

    def write(self) -> None:
        if not self._epochs and not self._layers:
            return

        def write() -> None:
            with session_scope() as session:
                self._record(session)

        retrying(write)
        self._recorded()

    def succeed(self, **values: Any) -> list[job_queue.FreedSlot] | None:
        """The attempt trained to the end and its artifact is stored: its pending epochs and its success
        in one transaction, which also reads what the running slot it frees needs (to pass on once it
        commits). None (nothing written) when the job was canceled or taken over first."""

        def write() -> list[job_queue.FreedSlot] | None:
            with session_scope() as session:
                try:
                    self._record(session)
                except Canceled:
                    return None
                job = transition(
                    session,
                    self.job_id,
                    JobStatus.SUCCEEDED,
                    source=JobStatus.RUNNING,
                    attempt=self.lease.attempt,
                    **values,
                )
                if job is None:
                    return None
                return job_queue.freed_slot_demand(session, get_settings(), job.tenant_id)

        demand = retrying(write)
        if demand is not None:
            self._recorded()
        return demand

    def _record(self, session: Session) -> None:
        """Writes the pending epochs, fenced; raises Canceled (writing nothing) when the attempt no longer
        owns the job."""
        epochs, layers = self._epochs, self._layers
        if not epochs and not layers:
            return
        last = epochs[-1][0].epoch if epochs else self.recorded
        self._owned(session, last, **({"progress_epoch": last} if epochs else {}))
        if epochs and self._first_write and self.lease.attempt > 1:
            # A resumed attempt redoes the epochs after its checkpoint; their numbers are the same, and
            # replacing them keeps each epoch recorded once.
            redo_from = epochs[0][0].epoch
            self._delete(session, EpochMetric, EpochMetric.epoch >= redo_from)
            self._delete(session, LayerStat, LayerStat.epoch >= redo_from)
        if epochs:
            session.execute(EPOCH_INSERT, [{"job_id": self.job_id, **epoch_numbers(r)} for r, _ in epochs])
            record_events(session, self.job_id, "epoch", [event for _, event in epochs])
        # The kept weights' statistics (on_layers) replace any their epoch was recorded with.
        by_epoch = {r.epoch: r.layers for r, _ in epochs if r.layers is not None}
        for epoch, stats in layers:
            self._delete(session, LayerStat, LayerStat.epoch == epoch)
            by_epoch[epoch] = stats
        self._insert_layers(session, list(by_epoch.items()))

    def _recorded(self) -> None:
        if self._epochs:
            self.recorded = self._epochs[-1][0].epoch
        self._epochs, self._layers = [], []
        self._first_write, self._written_at = False, time.monotonic()

    def _owned(self, session: Session, epoch: int, **values: Any) -> None:
        if not update_running(session, self.job_id, self.lease.attempt, heartbeat_at=utcnow(), **values):
            self.lease.lost.set()
            raise Canceled(epoch)

    def _delete(self, session: Session, rows: type[EpochMetric | LayerStat], which: ColumnElement[bool]) -> None:
        session.execute(delete(rows).where(rows.job_id == self.job_id, which))

    def _insert_layers(self, session: Session, epochs: list[tuple[int, list[dict[str, Any]]]]) -> None:
        rows = [
            {**layer, "job_id": self.job_id, "epoch": epoch, "position": i}
            for epoch, layers in epochs
            for i, layer in enumerate(layers)
        ]
        if rows:
            session.execute(LAYER_INSERT, rows)


def epoch_numbers(report: EpochReport) -> dict[str, Any]:
    """An epoch's numbers, as its epoch_metric row stores them."""
    validation, totals = report.validation or {}, report.totals
    return {
        "epoch": report.epoch,
        "train_data_loss": report.train_data_loss,
        "l1_penalty": report.l1_penalty,
        "l2_penalty": report.l2_penalty,
        "val_data_loss": validation.get("data_loss"),
        "val_accuracy": validation.get("accuracy"),
        "val_r2": validation.get("r2"),
        "val_rmse": validation.get("rmse"),
        "weight_count": totals["count"],
        "l1_norm": totals["l1_norm"],
        "l2_norm": totals["l2_norm"],
        "max_abs": totals["max_abs"],
        "zero_fraction": totals["zero_fraction"],
        "near_zero_fraction": totals["near_zero_fraction"],
        "lr": report.lr,
        "seconds": report.seconds,
    }


# What an epoch's row holds beyond its GET /metrics entry, which is what its event carries.
NOT_IN_EVENT = ("weight_count", "max_abs")


def epoch_event(report: EpochReport) -> dict[str, Any]:
    """An epoch's event: the numbers of its GET /metrics entry, how many epochs are planned, and when it
    was recorded."""
    numbers = {name: value for name, value in epoch_numbers(report).items() if name not in NOT_IN_EVENT}
    return _finite({**numbers, "total_epochs": report.epochs, "at": utcnow().isoformat()})


def _finite(value: Any) -> Any:
    """JSON has no NaN: a non-finite number in a result is stored as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _finish(job_id: str, attempt: int, to: JobStatus, **values: Any) -> Job | None:
    def write() -> Job | None:
        with session_scope() as session:
            return transition(session, job_id, to, source=JobStatus.RUNNING, attempt=attempt, **values)

    return retrying(write)


def _hand_back(job_id: str, attempt: int, why: str = "the worker is shutting down") -> None:
    """The job goes back to the queue now, not after a lease expires, without spending an attempt: the
    worker is shutting down, or the store stayed unreachable."""
    job = _finish(job_id, attempt, JobStatus.QUEUED, requeues=Job.requeues + 1, enqueued_at=utcnow(), heartbeat_at=None)
    if job is not None:
        enqueue_job(job_id, job.queue)
        log.info("job %s handed back to queue %s: %s", job_id, job.queue, why)


def missing_object_error(job_id: str, exc: ObjectMissing) -> dict[str, Any]:
    """The job's error when something the database points at is not in the store: the service's fault
    (an operator's to restore), not the user's data."""
    reference = str(uuid.uuid4())
    log.error("job %s: %s (reference %s)", job_id, exc.detail, reference)
    return {
        "error_type": "internal",
        "error_message": f"{exc.detail} This is not a problem with your data or spec; it has been logged under "
        f"reference {reference}.",
        "error_reference": reference,
    }


def run_job(job_id: str, load: Callable[[str, str, str, list[str] | None], LoadedData] = load_dataset) -> None:
    """Start the fairest queued job on the queue of `job_id` (models.job_queue: the message is a token,
    and the job it starts may be another tenant's), train it, and when it ends, pass its running slot
    on. `load` maps (dataset id, sha256, target, the spec's feature columns) to arrays; benchmarks pass
    their own data through it."""
    if SHUTTING_DOWN.is_set():
        _pass_message_on(job_id)
        return
    with session_scope() as session:
        job = job_queue.claim_fair(session, get_settings(), job_id)
        if job is None:
            log.info("no queued job on the queue of job %s may start now; nothing to do", job_id)
            return
        claimed = ClaimedJob(
            job.id, job.tenant_id, job.attempts, job.spec, job.task, job.dataset_id, job.dataset_sha256, job.kind
        )
    demand: list[job_queue.FreedSlot] | None = None  # what the freed slot needs, read with a job's success
    try:
        if claimed.kind == "study":
            from worker import studies

            studies.run_claimed(claimed, load)
        else:
            demand = _run_claimed(claimed, load)
    finally:
        _pass_slot_on(claimed.tenant_id, demand)


@dataclass(frozen=True)
class ClaimedJob:
    job_id: str
    tenant_id: str
    attempt: int
    spec: dict[str, Any]
    task: str
    dataset_id: str
    sha256: str
    kind: str = "train"


# Multiply-adds of one step's forward pass below which a job trains on one thread: its matrices are so small
# that waking a second thread for each operation costs more than it saves. Measured on 2 cores (iris, a
# linear model, 20 epochs, the whole job through run_job): 80 ms on one thread against 95 ms on two, and
# two such workers side by side 70 ms a job each against 110 ms.
SMALL_STEP_MULTIPLY_ADDS = 2**20


def small(config: TrainConfig, shape: tuple[int, ...]) -> bool:
    """Whether a job's steps are small enough to run on one thread (a fully connected network only)."""
    if config.model.type == "cnn":
        return False
    width = math.prod(shape[1:])
    layers = [] if config.model.type == "linear" else list(config.model.hidden_layers)
    # One output stands for the output layer: a lower bound (classes multiply it).
    multiply_adds = sum(a * b for a, b in itertools.pairwise([width, *layers, 1]))
    rows = min(config.training.batch_size or shape[0], shape[0])  # None: the whole training set at once
    return rows * multiply_adds < SMALL_STEP_MULTIPLY_ADDS


@contextmanager
def intra_op_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads for this block (0: as they are). The setting is the process's, so the
    runner uses it only on a worker that runs one job at a time."""
    if threads <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _pass_message_on(job_id: str) -> None:
    """A message this worker took while shutting down (on the embedded broker, often the very one it
    published when it handed its job back) is published again, so that the job waits for the next
    worker and not for the sweeper. Best effort: if the database or broker is down, the sweeper will."""
    try:
        with session_scope() as session:
            queue = session.scalar(select(Job.queue).where(Job.id == job_id))
    except Exception:
        log.warning("could not pass on the message for job %s; the sweeper will", job_id, exc_info=True)
        return
    if queue is not None and enqueue_job(job_id, queue):
        log.info("shutting down: the message for job %s goes back to queue %s", job_id, queue)


def _pass_slot_on(tenant_id: str, demand: list[job_queue.FreedSlot] | None = None) -> None:
    """The job ended or went back to the queue: one of its tenant's running slots is free. `demand`: what
    the slot needs, when the job's end read it already (a success); else it is read here. Best effort: if
    the database or broker is down, the sweeper re-sends for the jobs that could start."""
    try:
        if demand is not None:
            job_queue.pass_freed_slot_on(demand)
        else:
            with session_scope() as session:
                job_queue.publish_freed_slot(session, get_settings(), tenant_id)
    except Exception:
        log.warning("could not pass on a running slot of tenant %s; the sweeper will", tenant_id, exc_info=True)


def _run_claimed(
    claimed: ClaimedJob, load: Callable[[str, str, str, list[str] | None], LoadedData]
) -> list[job_queue.FreedSlot] | None:
    """Trains a claimed job to its end. Returns what its freed running slot needs when it succeeded (read in
    the same transaction as the success), None otherwise."""
    job_id, attempt, spec, task = claimed.job_id, claimed.attempt, claimed.spec, claimed.task
    dataset_id, sha256 = claimed.dataset_id, claimed.sha256
    settings = get_settings()
    store = get_store(settings)
    data: LoadedData | None = None
    config: TrainConfig | None = None
    trained = False
    with Lease(job_id, attempt, settings.job_time_limit_seconds) as lease:
        checkpoint = CheckpointSync(store, settings, job_id, owned=lambda: not lease.lost.is_set())
        reporter = DatabaseReporter(job_id, lease, checkpoint, settings.epoch_record_seconds)

        def stopping() -> bool:
            return lease.stop_reason() is not None

        def keep_partial() -> dict[str, Any]:
            return _write_partial(claimed, checkpoint.path, data, config)

        try:
            if attempt > 1:
                # Only an earlier attempt of the job leaves a checkpoint: a first one asks the store for none.
                checkpoint.fetch(give_up=stopping)
            data = load(dataset_id, sha256, spec["target"] or "target", spec.get("features"))
            config = TrainConfig.from_spec(spec, task)  # type: ignore[arg-type]
            with intra_op_threads(1 if small(config, data.arrays.X.shape) and JOBS_AT_A_TIME == 1 else 0):
                outcome = train(
                    config,
                    data.arrays,
                    reporter,
                    checkpoint_path=checkpoint.path,
                    on_checkpoint=reporter.checkpointed,
                )
            artifact_key = f"{job_id}.safetensors"
            with put_when_written(store, artifact_object_key(artifact_key), give_up=stopping) as path:
                write_artifact(path, outcome, spec, task, data.layout)
            # A worker killed before the job is marked succeeded leaves the last kept checkpoint: the job
            # resumes from it and redoes the epochs after it (those not recorded yet among them).
            trained = True
        except Canceled as stop:
            reason = lease.stop_reason()
            if reason == "shutdown":
                # No partial artifact: the job resumes from its checkpoint and finishes elsewhere; the
                # store gets that checkpoint before the job is queued again.
                reporter.settle(quietly=True)
                checkpoint.finish()
                _hand_back(job_id, attempt)
            elif reason == "timeout":
                reporter.settle(quietly=True)
                _fail(
                    claimed,
                    keep_partial(),
                    error_type="timeout",
                    error_message=f"Stopped at epoch {stop.epoch}: the job ran longer than this server's limit of "
                    f"{settings.job_time_limit_seconds} s. Its metrics and last checkpoint are kept.",
                )
            else:
                log.info("job %s stopped at epoch %d: it no longer belongs to this attempt", job_id, stop.epoch)
                # Canceled (it is terminal already), or taken over: the fenced write tells which.
                _record_partial(claimed, keep_partial())
            return None
        except Diverged as exc:
            # The checkpoint is the last epoch before divergence (an epoch's checkpoint is written only
            # after its losses were found finite); its weights are checked finite again before serving.
            reporter.settle(quietly=True)
            _fail(claimed, keep_partial(), error_type="diverged", error_message=str(exc))
            return None
        except (InvalidData, DatasetUnavailable) as exc:
            reporter.settle(quietly=True)
            _fail(claimed, keep_partial(), error_type="invalid_data", error_message=str(exc))
            return None
        except StoreUnavailable as exc:
            log.warning("job %s: the store stayed unavailable (%s)", job_id, exc.detail)
            reporter.settle(quietly=True)
            checkpoint.finish()
            _hand_back(job_id, attempt, "the store is unavailable")
            return None
        except ObjectMissing as exc:
            reporter.settle(quietly=True)
            _fail(claimed, keep_partial(), **missing_object_error(job_id, exc))
            return None
        except Exception:
            # Not the user's data: the service's own fault. The traceback goes to the log only, under a
            # reference the job shows, so that an operator can find it and the user is not blamed.
            reference = str(uuid.uuid4())
            log.exception("job %s failed with an internal error; reference %s", job_id, reference)
            reporter.settle(quietly=True)
            _fail(
                claimed,
                keep_partial(),
                error_type="internal",
                error_message=f"The service failed while training this job; it has been logged under reference "
                f"{reference}. This is not a problem with your data or spec.",
                error_reference=reference,
            )
            return None
        finally:
            if not trained:
                checkpoint.finish()

    result = _finite(outcome.result.to_json())
    # The epochs not recorded yet and the success in one write, which also reads what the freed running
    # slot needs (job_queue.freed_slot_demand).
    done = reporter.succeed(
        result=result,
        artifact_key=artifact_key,
        artifact_epoch=outcome.result.weights_epoch,
        artifact_partial=False,
        progress_epoch=result["epochs_run"],
    )
    if done is None:
        log.info("job %s finished training but was canceled or taken over first; result not recorded", job_id)
        # Canceled: like a job stopped mid-way, it keeps the weights of its last recorded epoch.
        _record_partial(claimed, _write_partial(claimed, checkpoint.path, data, config))
        checkpoint.finish()
        return None
    checkpoint.discard()
    return done


def _write_partial(
    claimed: ClaimedJob, checkpoint: Path, data: LoadedData | None, config: TrainConfig | None
) -> dict[str, Any]:
    """Writes the stopped attempt's last checkpointed weights as a partial artifact, under a key of its
    own (never the final artifact's, which a live attempt that took the job over may be writing), and
    returns the job columns that point at it; empty when there is nothing to keep. Best effort: a
    failure here must not keep the job's real outcome from being recorded."""
    if data is None or config is None or not checkpoint.is_file():
        return {}
    key = f"{claimed.job_id}.partial-{claimed.attempt}.safetensors"
    try:
        # One try (the store's client retries briefly itself): the job's outcome must not wait on it.
        with put_when_written(get_store(get_settings()), artifact_object_key(key), retry=False) as path:
            epoch = write_partial_artifact(
                path, checkpoint, data.arrays, config, claimed.spec, claimed.task, data.layout
            )
    except Exception:
        log.warning("could not keep the partial weights of job %s", claimed.job_id, exc_info=True)
        return {}
    if epoch is None:
        log.info("job %s keeps no partial weights: its last checkpoint is not finite", claimed.job_id)
        return {}
    return {"artifact_key": key, "artifact_epoch": epoch, "artifact_partial": True}


def _discard_partial(claimed: ClaimedJob, partial: dict[str, Any]) -> None:
    if partial:
        try:
            get_store(get_settings()).delete(artifact_object_key(partial["artifact_key"]))
        except StoreUnavailable:
            log.warning(
                "job %s: its unused partial weights %s stay in the store", claimed.job_id, partial["artifact_key"]
            )


def _record_partial(claimed: ClaimedJob, partial: dict[str, Any]) -> None:
    """Points a job that is already terminal at this attempt's partial weights (fenced: models.job_state)."""
    if not partial:
        return

    def write() -> bool:
        with session_scope() as session:
            return record_partial_artifact(
                session, claimed.job_id, claimed.attempt, partial["artifact_key"], partial["artifact_epoch"]
            )

    if retrying(write):
        log.info("job %s keeps its weights of epoch %d as partial", claimed.job_id, partial["artifact_epoch"])
    else:
        _discard_partial(claimed, partial)


def _fail(claimed: ClaimedJob, partial: dict[str, Any], **error: Any) -> None:
    """Fails the job with its partial weights in the same write; if the job was canceled meanwhile, it
    still gets them."""
    if _finish(claimed.job_id, claimed.attempt, JobStatus.FAILED, **error, **partial) is None:
        _record_partial(claimed, partial)
