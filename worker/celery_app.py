"""The worker's Celery application: the shared configuration plus the task modules."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init, worker_ready, worker_shutting_down

from core.celery_app import make_celery
from core.db import dispose_engine
from core.settings import get_settings

app = make_celery(get_settings())
app.conf.include = ["worker.tasks"]


@worker_shutting_down.connect
def _hand_back_running_jobs(**_: Any) -> None:
    # Warm shutdown (SIGTERM) waits for running tasks; this makes them stop at their next step and
    # requeue their jobs, instead of training on to the end or being killed mid-write.
    from worker.runner import SHUTTING_DOWN

    SHUTTING_DOWN.set()


@worker_ready.connect
def _say_ready(**_: Any) -> None:
    # On stdout whatever the log level: from here on the worker takes jobs (and those handed back to it).
    print("regtrain worker: ready", flush=True)


@worker_process_init.connect
def _fresh_connections_after_fork(**_: Any) -> None:
    # A pooled connection inherited from the parent must never be shared by two processes.
    dispose_engine()
