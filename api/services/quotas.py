"""Per-tenant limits: queued jobs and stored bytes are checked here when something is created; running
jobs are limited where workers claim jobs (worker.runner). A tenant's own limit overrides the server's
default (REGTRAIN_TENANT_MAX_*)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import TooLarge, TooManyRequests
from core.settings import Settings
from models import Dataset, Job, JobStatus, Tenant


@dataclass(frozen=True)
class Limits:
    queued_jobs: int
    running_jobs: int
    stored_bytes: int


def limits(session: Session, settings: Settings, tenant_id: str) -> Limits:
    tenant = session.get(Tenant, tenant_id)
    own = (tenant.max_queued_jobs, tenant.max_running_jobs, tenant.max_stored_bytes) if tenant else (None, None, None)
    return Limits(
        queued_jobs=own[0] if own[0] is not None else settings.tenant_max_queued_jobs,
        running_jobs=own[1] if own[1] is not None else settings.tenant_max_running_jobs,
        stored_bytes=own[2] if own[2] is not None else settings.tenant_max_stored_bytes,
    )


def queued_jobs(session: Session, tenant_id: str | None = None) -> int:
    query = select(func.count()).select_from(Job).where(Job.status == JobStatus.QUEUED.value)
    if tenant_id is not None:
        query = query.where(Job.tenant_id == tenant_id)
    return session.scalar(query) or 0


def stored_bytes(session: Session, tenant_id: str) -> int:
    return session.scalar(select(func.sum(Dataset.size_bytes)).where(Dataset.tenant_id == tenant_id)) or 0


def check_new_jobs(session: Session, settings: Settings, tenant_id: str, count: int = 1) -> None:
    """Room for `count` more queued jobs, for the tenant and for the server."""
    server = queued_jobs(session)
    if server + count > settings.max_queued_jobs:
        raise TooManyRequests(
            f"{server} jobs are already queued, this server's limit is {settings.max_queued_jobs}; retry when some "
            "have started."
        )
    own = queued_jobs(session, tenant_id)
    allowed = limits(session, settings, tenant_id).queued_jobs
    if own + count > allowed:
        raise TooManyRequests(
            f"Your tenant has {own} queued jobs and may have {allowed}; retry when some have started, or cancel some."
        )


def check_storage(session: Session, settings: Settings, tenant_id: str, adding: int) -> None:
    used = stored_bytes(session, tenant_id)
    allowed = limits(session, settings, tenant_id).stored_bytes
    if used + adding > allowed:
        raise TooLarge(
            f"Storing {adding:,} more bytes would bring your tenant's datasets to {used + adding:,} bytes, above its "
            f"quota of {allowed:,}; delete datasets you no longer need (DELETE /v1/datasets/ID)."
        )
