"""Database tables and the job state machine. Nothing else."""

from models.base import Base
from models.dataset import Dataset
from models.event import JobEvent
from models.idempotency import IdempotencyKey
from models.job import Job
from models.job_state import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATUSES,
    JobStatus,
    record_event,
    record_events,
    status_event,
    transition,
    update_running,
)
from models.metrics import EpochMetric, LayerStat
from models.schedule import Schedule, ScheduleRun
from models.study import StudyMember
from models.tenant import DEFAULT_TENANT, ApiKey, Tenant

__all__ = [
    "ALLOWED_TRANSITIONS",
    "DEFAULT_TENANT",
    "TERMINAL_STATUSES",
    "ApiKey",
    "Base",
    "Dataset",
    "EpochMetric",
    "IdempotencyKey",
    "Job",
    "JobEvent",
    "JobStatus",
    "LayerStat",
    "Schedule",
    "ScheduleRun",
    "StudyMember",
    "Tenant",
    "record_event",
    "record_events",
    "status_event",
    "transition",
    "update_running",
]
