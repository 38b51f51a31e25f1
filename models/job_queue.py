"""Which queued job a training message starts: the fairest one on its queue, not necessarily the one it names.

A message is a token, "run the fairest queued job on this queue" (the queue of the job it names: a job
never changes queue, and a cuda job is only ever claimed from the GPU queue). Among the tenants with
queued jobs on that queue and a free running slot (`Tenant.max_running_jobs`, or
REGTRAIN_TENANT_MAX_RUNNING_JOBS when null), the next one served is the one with the fewest running jobs,
then the one served least recently (`Tenant.served_at`, never-served first), then the one whose oldest
queued job is oldest; it gets its oldest queued job. So a tenant with a backlog of a thousand jobs delays
another tenant's next job by at most the jobs already running (tenants take turns), and each tenant's
jobs start in the order they were submitted, whichever messages start them. (Preferring the named job
when it is its tenant's would send a job whose message started another tenant's job to the back of its
tenant's line, behind every job whose message is still queued.)

Messages stay balanced with queued jobs: every queued job was published once, and a message starts at
most one job. A message that finds nothing it may start (every tenant waiting on its queue is at its
running limit) starts nothing, so when a running job ends, `publish_freed_slot` sends a message for the
slot it freed if the queue holds fewer messages than the jobs that could start now. The sweeper
(scheduler.upkeep) re-sends only for jobs that could start, so a tenant held at its limit never floods
the queue with messages that would do nothing, ahead of other tenants' jobs.

The claim is models.job_state.transition (conditional: a job is never claimed twice). The running limit
holds under concurrent claims too: SQLite's BEGIN IMMEDIATE makes every claim one writer at a time, and
on PostgreSQL a claim first stamps its tenant's `served_at`, which locks that tenant's row (FOR NO KEY
UPDATE: inserting the tenant's new jobs is not blocked) until the claim commits, then counts the
tenant's running jobs, so two claims for one tenant take turns.

Every query is grouped or limited: one over the queued jobs of the queue grouped by tenant, joined with the
running jobs grouped by tenant, then one tenant's oldest job; none runs per job."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from core.celery_app import enqueue_job, queue_depth
from core.settings import Settings
from models.base import utcnow
from models.job import Job
from models.job_state import JobStatus, transition
from models.tenant import Tenant

log = logging.getLogger(__name__)

# A claim that loses a race (another worker took the job, or filled the tenant's last slot) looks again;
# each look sees the winner's commit, so a few suffice. Bounded so a claim never spins.
MAX_CLAIM_TRIES = 8
# Of the chosen tenant's oldest queued jobs, how many one try attempts before looking again.
CANDIDATES_PER_TRY = 3


@dataclass(frozen=True)
class Waiting:
    """A tenant with queued jobs on one queue, and what decides its turn."""

    tenant_id: str
    queued: int
    oldest_queued_at: datetime
    running: int
    running_limit: int
    served_at: datetime | None

    @property
    def free_slots(self) -> int:
        return max(0, self.running_limit - self.running)


def running_limit(tenant_limit: int | None, settings: Settings) -> int:
    return tenant_limit if tenant_limit is not None else settings.tenant_max_running_jobs


def waiting_tenants(session: Session, settings: Settings, queue: str) -> list[Waiting]:
    """The tenants with queued jobs on `queue`, fairest first (including those at their limit)."""
    queued = (
        select(
            Job.tenant_id,
            func.count().label("queued"),
            func.min(Job.created_at).label("oldest_queued_at"),
        )
        .where(Job.status == JobStatus.QUEUED.value, Job.queue == queue)
        .group_by(Job.tenant_id)
        .subquery()
    )
    running = (
        select(Job.tenant_id, func.count().label("running"))
        .where(Job.status == JobStatus.RUNNING.value)
        .group_by(Job.tenant_id)
        .subquery()
    )
    rows = session.execute(
        select(
            queued.c.tenant_id,
            queued.c.queued,
            queued.c.oldest_queued_at,
            func.coalesce(running.c.running, 0).label("running"),
            Tenant.max_running_jobs,
            Tenant.served_at,
        )
        .join(Tenant, Tenant.id == queued.c.tenant_id)
        .outerjoin(running, running.c.tenant_id == queued.c.tenant_id)
    )
    waiting = [
        Waiting(
            tenant_id=row.tenant_id,
            queued=row.queued,
            oldest_queued_at=row.oldest_queued_at,
            running=row.running,
            running_limit=running_limit(row.max_running_jobs, settings),
            served_at=row.served_at,
        )
        for row in rows
    ]
    return sorted(waiting, key=_turn)


def _turn(tenant: Waiting) -> tuple[int, bool, datetime, datetime, str]:
    never = datetime.min.replace(tzinfo=tenant.oldest_queued_at.tzinfo)
    served = tenant.served_at if tenant.served_at is not None else never
    return (tenant.running, tenant.served_at is not None, served, tenant.oldest_queued_at, tenant.tenant_id)


def claim_fair(session: Session, settings: Settings, job_id: str) -> Job | None:
    """Claim (queued -> running) the fairest queued job on the queue of `job_id`, and stamp its tenant's
    `served_at`, in the caller's transaction (the caller commits). None when the named job is unknown or
    no waiting tenant has a free slot: nothing is claimed and every job stays queued."""
    queue = session.scalar(select(Job.queue).where(Job.id == job_id))
    if queue is None:
        return None
    for _ in range(MAX_CLAIM_TRIES):
        turns = [tenant for tenant in waiting_tenants(session, settings, queue) if tenant.free_slots > 0]
        if not turns:
            return None
        tenant = turns[0]
        claimed = _claim_for(session, tenant, queue)
        if claimed is not None:
            return claimed
        # Lost a race: drop the served_at stamp (and the tenant's lock) and look again at what the winner left.
        session.rollback()
    log.warning("gave up claiming a job on queue %s after %d lost races", queue, MAX_CLAIM_TRIES)
    return None


def _claim_for(session: Session, tenant: Waiting, queue: str) -> Job | None:
    # First, so that on PostgreSQL it locks the tenant's row: claims for one tenant take turns from here.
    session.execute(
        update(Tenant)
        .where(Tenant.id == tenant.tenant_id)
        .values(served_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    # The tenant's oldest queued jobs, each row with its running count as it is now that its row is locked.
    other = aliased(Job)
    running = (
        select(func.count())
        .select_from(other)
        .where(other.tenant_id == tenant.tenant_id, other.status == JobStatus.RUNNING.value)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Job.id, running)
        .where(Job.status == JobStatus.QUEUED.value, Job.queue == queue, Job.tenant_id == tenant.tenant_id)
        .order_by(Job.created_at, Job.id)
        .limit(CANDIDATES_PER_TRY)
    ).all()
    if not rows or rows[0][1] >= tenant.running_limit:
        return None  # another claim took them, or filled the last slot, since the tenant was chosen
    candidates = [job_id for job_id, _ in rows]
    for candidate in candidates:
        job = transition(session, candidate, JobStatus.RUNNING, source=JobStatus.QUEUED)
        if job is not None:
            return job
    return None


def startable(waiting: list[Waiting]) -> int:
    """How many queued jobs could start now: each waiting tenant's queued jobs, up to its free slots."""
    return sum(min(tenant.queued, tenant.free_slots) for tenant in waiting)


@dataclass(frozen=True)
class FreedSlot:
    """A queue where the tenant that freed a running slot has queued jobs and a free slot: one of them to
    name in a message, and how many jobs on the queue could start now."""

    queue: str
    any_job_id: str
    startable: int


def freed_slot_demand(session: Session, settings: Settings, tenant_id: str) -> list[FreedSlot]:
    """The database half of passing a freed slot on: read in the caller's transaction, which may be the one
    that ends the job (its slot counts as free there). Read the broker only after that commits
    (pass_freed_slot_on): a message that found the slot still taken and started nothing meanwhile then
    shows as one fewer in the queue."""
    queues = list(
        session.execute(
            select(Job.queue, func.min(Job.id))
            .where(Job.status == JobStatus.QUEUED.value, Job.tenant_id == tenant_id)
            .group_by(Job.queue)
        )
    )
    demand = []
    for queue, any_job_id in queues:
        waiting = waiting_tenants(session, settings, queue)
        if any(tenant.tenant_id == tenant_id and tenant.free_slots > 0 for tenant in waiting):
            demand.append(FreedSlot(queue, any_job_id, startable(waiting)))
        # else the slot was taken again already, by a message that was waiting
    return demand


def pass_freed_slot_on(demand: list[FreedSlot]) -> list[str]:
    """The broker half: on each queue of `demand`, publish one message if the queue holds fewer messages
    than the jobs that could start now. Returns the queues published to."""
    published = []
    for slot in demand:
        try:
            enough = queue_depth(slot.queue) >= slot.startable
        except Exception:
            log.warning("could not read the depth of queue %s; publishing", slot.queue, exc_info=True)
            enough = False
        if not enough and enqueue_job(slot.any_job_id, slot.queue):
            published.append(slot.queue)
    return published


def publish_freed_slot(session: Session, settings: Settings, tenant_id: str) -> list[str]:
    """A job of `tenant_id` ended (or went back to the queue), freeing one of its running slots. On each
    queue where the tenant has queued jobs, publish one message if the queue holds fewer messages than
    the jobs that could start now: a message that found the tenant at its limit started nothing, and
    this one replaces it. Returns the queues published to. Publishing more than needed is harmless (a
    message that finds nothing to start does nothing); publishing too few would leave jobs waiting for
    the sweeper, so a broker that cannot be asked gets a message anyway."""
    demand = freed_slot_demand(session, settings, tenant_id)
    session.rollback()
    return pass_freed_slot_on(demand)
