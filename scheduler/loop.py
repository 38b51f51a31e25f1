"""`regtrain scheduler`: fires due schedule slots, creates the refit jobs of finished studies, and keeps
jobs moving when workers or the broker fail (scheduler.upkeep). Any number may run against one database:
each slot still fires once, each refit is made once, and each job moves once (see
api.services.schedules and models.job_state).

A plain loop rather than Celery beat: beat keeps its own schedule state and must run as a single
instance, while this keeps all state in the database."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime

from core.db import get_session_factory
from core.settings import Settings, get_settings
from models.base import utcnow

log = logging.getLogger("regtrain.scheduler")

# How often due slots are looked for: the worst-case delay from a slot to its job.
TICK_SECONDS = 0.5


def run(
    settings: Settings | None = None, clock: Callable[[], datetime] = utcnow, stop: threading.Event | None = None
) -> None:
    from api.services.schedules import fire_due
    from api.services.studies import create_pending_refits
    from scheduler.upkeep import run_upkeep

    settings = settings or get_settings()
    stop = stop or threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signum, lambda *_: stop.set())
    log.info("scheduler started")
    while not stop.is_set():
        try:
            with get_session_factory()() as session:
                run_upkeep(session, settings, clock())
                for fired in fire_due(session, settings, clock()):
                    log.info(
                        "schedule %s slot %s: %s %s",
                        fired.schedule_id,
                        fired.scheduled_for.isoformat(),
                        fired.outcome,
                        fired.job_id or "",
                    )
                for job_id in create_pending_refits(session, settings):
                    log.info("refit job %s created for a finished study", job_id)
        except Exception:
            # A database or broker outage must not end the scheduler; the next tick tries again.
            log.exception("firing due schedules failed; retrying")
        stop.wait(TICK_SECONDS)
    log.info("scheduler stopped")
