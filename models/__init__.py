"""Database tables and the job state machine. Nothing else."""

from models.base import Base
from models.dataset import Dataset
from models.idempotency import IdempotencyKey
from models.job import Job
from models.job_state import ALLOWED_TRANSITIONS, TERMINAL_STATUSES, JobStatus, transition, update_running
from models.metrics import EpochMetric, LayerStat
from models.schedule import Schedule, ScheduleRun

__all__ = [
    "ALLOWED_TRANSITIONS",
    "TERMINAL_STATUSES",
    "Base",
    "Dataset",
    "EpochMetric",
    "IdempotencyKey",
    "Job",
    "JobStatus",
    "LayerStat",
    "Schedule",
    "ScheduleRun",
    "transition",
    "update_running",
]
