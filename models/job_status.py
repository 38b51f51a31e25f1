"""The one job status enum: the job table's column and check constraint, the state machine
(models/job_state.py) and the API schemas all use it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import String, TypeDecorator
from sqlalchemy.engine import Dialect


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class JobStatusColumn(TypeDecorator[JobStatus]):
    """Stored as its plain string value (VARCHAR(16), constrained by the table's check), read back as
    a JobStatus."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else JobStatus(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> JobStatus | None:
        return None if value is None else JobStatus(value)
