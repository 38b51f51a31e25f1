"""The worker's Celery application: the shared configuration plus the task modules."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init

from core.celery_app import make_celery
from core.db import dispose_engine
from core.settings import get_settings

app = make_celery(get_settings())
app.conf.include = ["worker.tasks"]


@worker_process_init.connect
def _fresh_connections_after_fork(**_: Any) -> None:
    # A pooled connection inherited from the parent must never be shared by two processes.
    dispose_engine()
