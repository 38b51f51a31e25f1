"""Celery tasks: thin glue that passes a job id to the runner."""

from __future__ import annotations

from core.queues import TASK_TRAIN_JOB
from worker.celery_app import app
from worker.runner import run_job


@app.task(name=TASK_TRAIN_JOB, ignore_result=True)
def train_job(job_id: str) -> None:
    """Train one job. The job row decides whether there is anything to do."""
    run_job(job_id)
