"""Publishing to the broker. Only job ids travel; the job row is committed before its message exists."""

from __future__ import annotations

import logging

from core.celery_app import get_celery
from core.queues import TASK_TRAIN_JOB

log = logging.getLogger(__name__)


def enqueue_job(job_id: str, queue: str) -> bool:
    """Publish a training message. A failure leaves the committed job queued (it is not lost: it can be
    re-enqueued), so it is logged, not raised to the client whose job was accepted."""
    try:
        get_celery().send_task(
            TASK_TRAIN_JOB,
            args=[job_id],
            queue=queue,
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
        )
    except Exception:
        log.exception("could not publish job %s to queue %s; it stays queued", job_id, queue)
        return False
    return True
