"""Database tables and the job state machine. Nothing else."""

from models.base import Base
from models.job import Job
from models.job_state import ALLOWED_TRANSITIONS, TERMINAL_STATUSES, JobStatus, transition, update_running
from models.metrics import EpochMetric, LayerStat

__all__ = [
    "ALLOWED_TRANSITIONS",
    "TERMINAL_STATUSES",
    "Base",
    "EpochMetric",
    "Job",
    "JobStatus",
    "LayerStat",
    "transition",
    "update_running",
]
