"""The Celery application's configuration, shared by the API (which only publishes, by task name)
and the worker (which registers the tasks on top of it)."""

from __future__ import annotations

import logging
import sqlite3
from functools import lru_cache
from pathlib import Path
from typing import Any

from amqp.exceptions import ChannelError
from celery import Celery
from kombu import Queue
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Transport as SqlaTransport

from core.queues import ALL_QUEUES, QUEUE_TRAIN, TASK_TRAIN_JOB
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)

# A redelivered message is only a hint (the job row is the truth), but it must not come back while
# the first attempt may still be training: keep it invisible for longer than any job may run.
VISIBILITY_MARGIN_SECONDS = 3600
# How often a worker on the embedded (SQLite) broker looks for a message: the bound on its pick-up delay.
EMBEDDED_POLL_SECONDS = 0.05


class EmbeddedTransport(SqlaTransport):
    """kombu's SQLAlchemy transport, polling for messages every EMBEDDED_POLL_SECONDS instead of once a
    second (which was most of a small job's latency on the embedded default). Each poll is one short
    indexed transaction on a WAL file, so polling 20 times a second costs little. (The interval cannot
    go through broker_transport_options: this transport passes those to create_engine.)"""

    polling_interval = EMBEDDED_POLL_SECONDS


# `sqla+sqlite:///...` broker URLs resolve to the transport registered under "sqla".
TRANSPORT_ALIASES["sqla"] = "core.celery_app:EmbeddedTransport"
TRANSPORT_ALIASES["sqlalchemy"] = "core.celery_app:EmbeddedTransport"


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    url = settings.resolved_broker_url
    if url.startswith(("sqla+", "sqlalchemy+")):
        # kombu's SQLAlchemy transport passes these options to create_engine: wait for the lock
        # rather than failing when the API and a worker touch the broker file at the same moment.
        return {"connect_args": {"timeout": 30}}
    return {"visibility_timeout": settings.job_time_limit_seconds + VISIBILITY_MARGIN_SECONDS}


def prepare_sqlite_broker(settings: Settings) -> None:
    """Switch the embedded broker's file to WAL (a persistent property of the file) so that the
    API publishing and the worker polling do not block each other."""
    url = settings.resolved_broker_url
    prefix = "sqla+sqlite:///"
    if not url.startswith(prefix):
        return
    path = Path(url[len(prefix) :])
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path, timeout=30) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    connection.close()


def make_celery(settings: Settings) -> Celery:
    app = Celery("regtrain", broker=settings.resolved_broker_url, set_as_current=False)
    app.conf.update(
        # The database row says what happened to a job; Celery stores no results.
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        # A message is acknowledged when the task ends, one at a time, and requeued if the worker dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=[Queue(name) for name in ALL_QUEUES],
        task_default_queue=QUEUE_TRAIN,
        task_create_missing_queues=False,
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app


@lru_cache
def get_celery() -> Celery:
    return make_celery(get_settings())


def enqueue_job(job_id: str, queue: str) -> bool:
    """Publish a training message (only the job id travels). A failure leaves the committed job
    queued, not lost: the sweeper re-sends it. So it is logged, not raised."""
    try:
        get_celery().send_task(
            TASK_TRAIN_JOB,
            args=[job_id],
            queue=queue,
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
        )
    except Exception:
        log.exception("could not publish job %s to queue %s; it stays queued for the sweeper", job_id, queue)
        return False
    return True


def queue_depth(queue: str) -> int:
    """Messages waiting in a broker queue (not those a worker has taken). A queue the broker no longer
    knows (flushed, or restarted without persistence) holds none."""
    # A pooled connection and its channel: opening a connection costs a worker about 10 ms per job on Redis.
    with get_celery().pool.acquire(block=True) as connection:
        try:
            _, count, _ = connection.default_channel.queue_declare(queue=queue, passive=True)
        except ChannelError:
            # AMQP closes a channel that asked for a queue it does not know: the next user reconnects.
            connection.close()
            return 0
        return int(count)
