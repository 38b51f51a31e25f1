"""Jobs made and read directly on the database, for tests that run them in this process."""

from __future__ import annotations

from sqlalchemy import select

from api.schemas.job import JobCreate
from api.services.jobs import create_job
from core.db import get_session_factory
from core.settings import get_settings
from models import EpochMetric, Job
from tests.support.app import default_tenant_id


def submit(body: dict[str, object]) -> str:
    """Through the API's one function that admits jobs, as POST /v1/jobs does (tenant `default`)."""
    with get_session_factory()() as session:
        return create_job(session, get_settings(), default_tenant_id(session), JobCreate.model_validate(body)).id


def load(job_id: str) -> tuple[Job, list[int]]:
    """The job row and the epochs it recorded."""
    with get_session_factory()() as session:
        job = session.get(Job, job_id)
        assert job is not None
        epochs = list(session.scalars(select(EpochMetric.epoch).where(EpochMetric.job_id == job_id)))
        return job, epochs
