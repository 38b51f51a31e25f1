"""Fairness between tenants: how long one tenant's next job waits behind another tenant's backlog.

  stack       a migrated database and one worker process (concurrency 1) on the embedded default
              (SQLite database, SQLite broker) in a temporary REGTRAIN_HOME
  backlog     tenant A queues --backlog tiny jobs (builtin:iris, linear, 1 epoch), written and published
              the way create_job does (commit, then core.celery_app.enqueue_job) from this process;
              the tenants are made here too, so the benchmark does not depend on the admin API
  other       once the worker has started --warmup of A's jobs, tenant B queues one job
  measured    the median job time (the interval between consecutive starts of A's jobs: the job and
              the worker's work between jobs, which is what B waits behind), B's wait from submit
              (created_at) to start (started_at), their ratio, and how many of A's jobs started between
              B's submit and B's start (FIFO would start every queued A job first); also the time one
              look at the queue (models.job_queue.waiting_tenants) takes with the backlog queued

Target: B waits at most about one job's time (ratio <= ~1-2), whatever A's backlog.
One run at a time: the machine's other work shows in every figure.

    python -m bench.fairness [--backlog 1000] [--warmup 5] [--after 10]
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
TINY = {"dataset": "builtin:iris", "model": {"type": "linear"}, "training": {"epochs": 1}}


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout} s waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=1000, help="tenant A's queued jobs")
    parser.add_argument("--warmup", type=int, default=5, help="A's jobs started before B submits")
    parser.add_argument("--after", type=int, default=10, help="A's jobs started after B's, for the median")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="regtrain-bench-fairness-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGTRAIN_")}
    env.update(REGTRAIN_HOME=str(home), REGTRAIN_LOG_LEVEL="warning", PYTHONUNBUFFERED="1")
    os.environ.clear()
    os.environ.update(env)
    subprocess.run([sys.executable, "-m", "cli.main", "migrate"], env=env, check=True, capture_output=True)

    from sqlalchemy import select

    from api.schemas.job import JobCreate
    from api.services.jobs import build_job
    from core.celery_app import enqueue_job, prepare_sqlite_broker
    from core.db import get_session_factory
    from core.queues import QUEUE_TRAIN
    from core.settings import get_settings
    from models import Job, Tenant
    from models.base import utcnow
    from models.job_queue import waiting_tenants

    settings = get_settings()
    prepare_sqlite_broker(settings)
    factory = get_session_factory()

    def queue_jobs(tenant_name: str, count: int) -> list[str]:
        with factory() as session:
            tenant = Tenant(name=tenant_name)
            session.add(tenant)
            session.flush()
            start = utcnow()
            jobs = [build_job(session, settings, tenant.id, JobCreate.model_validate(TINY)) for _ in range(count)]
            for i, job in enumerate(jobs):
                job.created_at = start + timedelta(microseconds=i)
            session.add_all(jobs)
            session.commit()
        for job in jobs:
            enqueue_job(job.id, job.queue)
        return [job.id for job in jobs]

    def started(job_ids: list[str]) -> list[Job]:
        with factory() as session:
            rows = session.scalars(select(Job).where(Job.id.in_(job_ids), Job.started_at.is_not(None)))
            return sorted(rows, key=lambda job: job.started_at or job.created_at)

    print(f"home {home}; queueing {args.backlog} jobs of tenant A", flush=True)
    t0 = time.monotonic()
    backlog = queue_jobs("tenant-a", args.backlog)
    print(f"  queued and published in {time.monotonic() - t0:.1f} s", flush=True)
    with factory() as session:
        t0 = time.perf_counter()
        looks = 20
        for _ in range(looks):
            waiting_tenants(session, settings, QUEUE_TRAIN)
            session.rollback()
        look_ms = (time.perf_counter() - t0) / looks * 1000

    log = (home / "worker.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: len(started(backlog)) >= args.warmup, 180, f"{args.warmup} of A's jobs to start")
        (other,) = queue_jobs("tenant-b", 1)
        (other_job,) = wait_for(lambda: started([other]), 120, "B's job to start")
        assert other_job.started_at is not None
        after = other_job.started_at
        wait_for(
            lambda: len([j for j in started(backlog) if j.started_at and j.started_at > after]) >= args.after,
            180,
            f"{args.after} of A's jobs to start after B's",
        )
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        log.close()

    a_jobs = started(backlog)
    starts = [job.started_at for job in a_jobs if job.started_at is not None]
    # Start-to-start intervals of A's jobs, leaving out the one that spans B's job and the first
    # (the worker's first task pays one-off costs).
    intervals = [
        (later - earlier).total_seconds()
        for earlier, later in itertools.pairwise(starts[1:])
        if not (earlier < after < later)
    ]
    runs = [
        (job.finished_at - job.started_at).total_seconds()
        for job in a_jobs[1:]
        if job.finished_at is not None and job.started_at is not None
    ]
    job_seconds = statistics.median(intervals)
    wait = (after - other_job.created_at).total_seconds()
    before_submit = sum(1 for s in starts if s <= other_job.created_at)
    between = sum(1 for s in starts if other_job.created_at < s < after)
    queued_at_submit = args.backlog - before_submit
    print()
    print(f"tenant A backlog                      {args.backlog} jobs (builtin:iris, linear, 1 epoch)")
    print(f"one look at the queue (1 query pair)  {look_ms:.2f} ms with {args.backlog} queued")
    run_seconds = statistics.median(runs)
    print(f"median job time (start to start)      {job_seconds:.3f} s   (median run alone {run_seconds:.3f} s)")
    print(f"B's wait, submit to start             {wait:.3f} s")
    print(f"ratio wait / job time                 {wait / job_seconds:.2f}   (target <= ~1-2)")
    print(
        f"A's jobs started before B's           {before_submit + between} "
        f"({before_submit} before B's submit, {between} between submit and start)"
    )
    print(
        f"FIFO would have started first         {queued_at_submit} more of A's jobs, "
        f"about {queued_at_submit * job_seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
